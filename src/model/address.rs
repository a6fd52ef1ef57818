//! Addresses: networks, allocation, MACs.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an IP address.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// Parses a CIDR such as `172.16.2.0/24`; the host part must be zero.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a CIDR (e.g. 172.16.2.0/24)"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{s}` has host bits set; the network is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(v).ok().map(|x| IpAddr::V4(x.into())),
        IpAddr::V6(_) => Some(IpAddr::V6(v.into())),
    }
}

/// The host number of an address within its network (address minus network address).
pub fn host_offset(net: &IpNet, ip: IpAddr) -> Option<u128> {
    if !net.contains(&ip) {
        return None;
    }
    Some(to_u128(ip) - to_u128(net.network()))
}

/// The address with the given host number in a network.
pub fn nth_address(net: &IpNet, offset: u128) -> Option<IpAddr> {
    let ip = from_u128(to_u128(net.network()).checked_add(offset)?, net.network())?;
    net.contains(&ip).then_some(ip)
}

/// Whether `ip` lies in the inclusive range.
pub fn in_range(ip: IpAddr, start: IpAddr, end: IpAddr) -> bool {
    let (i, s, e) = (to_u128(ip), to_u128(start), to_u128(end));
    ip.is_ipv4() == start.is_ipv4() && s <= i && i <= e
}

/// Normalizes a MAC address to lower-case colon form; `None` if malformed.
pub fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_host_numbers_across_networks() {
        let ctl = parse_cidr("192.168.24.0/24").unwrap();
        let api = parse_cidr("172.16.2.0/24").unwrap();
        let off = host_offset(&ctl, "192.168.24.31".parse().unwrap()).unwrap();
        assert_eq!(off, 31);
        assert_eq!(nth_address(&api, off), Some("172.16.2.31".parse().unwrap()));
        assert_eq!(nth_address(&parse_cidr("10.0.0.0/28").unwrap(), 31), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            normalize_mac("52:54:00:AA:bb:01").as_deref(),
            Some("52:54:00:aa:bb:01")
        );
        assert_eq!(
            normalize_mac("52-54-00-aa-bb-01").as_deref(),
            Some("52:54:00:aa:bb:01")
        );
        assert_eq!(normalize_mac("52:54:00:aa:bb"), None);
        assert_eq!(normalize_mac("52:54:00:aa:bb:zz"), None);
    }

    #[test]
    fn cidr_with_host_bits_is_refused() {
        assert!(parse_cidr("172.16.2.1/24").is_err());
        assert!(parse_cidr("not-a-net").is_err());
    }
}
