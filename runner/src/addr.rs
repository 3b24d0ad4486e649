//! Socket addresses as people write them: `HOST:PORT`, the host a name or an IP address.
//! Every address flag and setting of the workspace parses through here, so
//! `--target localhost:8080` works wherever `--target 127.0.0.1:8080` does.

use std::net::{SocketAddr, ToSocketAddrs};

/// Parses `HOST:PORT`, resolving a host name (an IPv4 address first when the name has
/// both: `localhost` is 127.0.0.1 to the programs here, which listen there by default).
pub fn parse(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| {
            format!("{s:?} is not HOST:PORT (a host name or an IP address, a colon, a port): {e}")
        })?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Serde for a `SocketAddr` setting written `HOST:PORT` (written back as `IP:PORT`).
pub mod serde_addr {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    /// As `IP:PORT`.
    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    /// From `HOST:PORT`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for an optional `SocketAddr` setting written `HOST:PORT`.
pub mod serde_opt_addr {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    /// As `IP:PORT`, or absent.
    pub fn serialize<S: Serializer>(a: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.collect_str(a),
            None => s.serialize_none(),
        }
    }

    /// From `HOST:PORT`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(parse("127.0.0.1:9").unwrap().port(), 9);
        assert_eq!(parse("[::1]:9").unwrap().port(), 9);
        let local = parse("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.is_ipv4(), "{local}");
        assert_eq!(local.port(), 8080);
        for bad in [
            "localhost",
            "127.0.0.1",
            ":80",
            "localhost:http-ish",
            "a b:1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("HOST:PORT"), "{bad}: {err}");
        }
    }
}
