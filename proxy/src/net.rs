//! Addresses: upstream base URLs parsed once so a request path can never change where the
//! proxy connects ([`UpstreamBase`]), CIDR ranges of trusted load balancers ([`Cidr`]), and
//! the client address of a request ([`client_ip`]).

use http::uri::{Authority, Scheme};
use std::net::IpAddr;

/// An upstream's scheme, authority and base path, fixed at configuration time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    scheme: Scheme,
    authority: Authority,
    /// Without a trailing `/` (empty for the root).
    base_path: String,
}

impl UpstreamBase {
    /// Parses `http[s]://host[:port][/base]`; user info, a query or a fragment are refused.
    pub fn parse(url: &str) -> Result<UpstreamBase, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| format!("`{url}` has no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!("`{url}`: expected an http:// or https:// URL"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| format!("`{url}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{url}`: user info in the URL is not supported"));
        }
        if authority.host().is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(format!("`{url}`: a query or fragment is not supported"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(UpstreamBase { scheme, authority, base_path })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The upstream URI for `path` (which starts with `/`) and an optional raw query. The
    /// scheme and authority are set as parts, never parsed out of text that contains the
    /// path, so no path can move the request to another host or port.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<http::Uri, String> {
        if !path.starts_with('/') {
            return Err("the upstream path must start with /".into());
        }
        let mut pq = String::with_capacity(self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| format!("cannot build the upstream URL: {e}"))?;
        if uri.authority() != Some(&self.authority) {
            return Err("the upstream URL's authority changed".into());
        }
        Ok(uri)
    }
}

/// An address range, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| format!("`{text}` is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("`{text}`: bad prefix"))?
            }
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn masked(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the connection's peer, or the configured header's value when the
/// peer is a trusted proxy and the header holds one address (the last of a list, the one
/// the trusted proxy added).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    header: Option<&str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let Some(name) = header else { return Some(peer) };
    if !trusted.iter().any(|c| c.contains(peer)) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    Some(forwarded.map_or(peer, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_change_the_authority() {
        let base = UpstreamBase::parse("http://127.0.0.1:3000").unwrap();
        for path in ["/x", "/@127.0.0.1:9/x", "//127.0.0.1:9/x", "/x@evil:1/", "/%40evil"] {
            let uri = base.uri(path, Some("a=1@b")).unwrap();
            assert_eq!(uri.authority().unwrap().as_str(), "127.0.0.1:3000", "{path}");
        }
        assert!(base.uri("@127.0.0.1:9/x", None).is_err());
        let based = UpstreamBase::parse("https://bi.internal/metabase/").unwrap();
        assert_eq!(based.uri("/api/card", None).unwrap().to_string(), "https://bi.internal/metabase/api/card");
        for bad in ["ftp://x", "http://user:pw@x", "http://x/?a=1", "127.0.0.1:3000", "http://"] {
            assert!(UpstreamBase::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_and_client_addresses() {
        let lb = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(lb.contains("10.1.2.3".parse().unwrap()));
        assert!(lb.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!lb.contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:1::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        let mut h = http::HeaderMap::new();
        h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
        let trusted = [lb];
        let from_lb = Some("10.0.0.5".parse().unwrap());
        let direct = Some("198.51.100.1".parse().unwrap());
        assert_eq!(client_ip(from_lb, &h, Some("x-real-ip"), &trusted), "203.0.113.9".parse().ok());
        assert_eq!(client_ip(direct, &h, Some("x-real-ip"), &trusted), direct, "only trusted peers");
        h.insert("x-real-ip", "1.1.1.1, 203.0.113.7".parse().unwrap());
        assert_eq!(client_ip(from_lb, &h, Some("x-real-ip"), &trusted), "203.0.113.7".parse().ok());
        h.insert("x-real-ip", "garbage".parse().unwrap());
        assert_eq!(client_ip(from_lb, &h, Some("x-real-ip"), &trusted), from_lb);
        assert_eq!(client_ip(None, &h, None, &trusted), None);
    }
}
