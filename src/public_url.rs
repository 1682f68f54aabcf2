//! The public base URL participants reach raum at: join URLs are built from it, and
//! browsers' WebSocket upgrades must come from its origin. Checked once, when the flag
//! is parsed, the same way for the operator, the gateway and standalone mode.

use std::fmt;
use std::str::FromStr;

/// An `http://` or `https://` base URL with a host, without user info, query or
/// fragment; a trailing slash is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    origin: String,
}

/// Why a string is not a public URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} {why}")]
pub struct PublicUrlError {
    url: String,
    why: &'static str,
}

impl FromStr for PublicUrl {
    type Err = PublicUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why| PublicUrlError {
            url: url.to_owned(),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("must start with http:// or https://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("must start with http:// or https://"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.starts_with(':') {
            return Err(bad("must name a host"));
        }
        if authority.contains('@') {
            return Err(bad("must not carry a user name or password"));
        }
        let authority = authority.to_ascii_lowercase();
        // Browsers leave the scheme's default port out of Origin.
        let origin_authority = match (scheme.as_str(), authority.rsplit_once(':')) {
            ("https", Some((host, "443"))) | ("http", Some((host, "80")))
                if !host.ends_with(']') || host.starts_with('[') =>
            {
                host.to_owned()
            }
            _ => authority.clone(),
        };
        Ok(Self {
            base: format!("{scheme}://{authority}{}", path.trim_end_matches('/')),
            origin: format!("{scheme}://{origin_authority}"),
        })
    }
}

impl PublicUrl {
    /// The base URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The origin (`scheme://host[:port]`, the default port left out) browsers send in
    /// `Origin` on pages under this URL.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The join URL of the meeting with `token`.
    pub fn join_url(&self, token: &str) -> String {
        format!("{}/j/{token}", self.base)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> PublicUrl {
        s.parse().unwrap()
    }

    #[test]
    fn base_and_origin() {
        let u = url("https://Meet.Example.org/base/");
        assert_eq!(u.as_str(), "https://meet.example.org/base");
        assert_eq!(u.origin(), "https://meet.example.org");
        assert_eq!(u.join_url("T"), "https://meet.example.org/base/j/T");
        assert_eq!(
            url("http://127.0.0.1:8080").origin(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            url("https://meet.example.org:443/").origin(),
            "https://meet.example.org"
        );
        assert_eq!(url("http://[::1]:80").origin(), "http://[::1]");
        assert_eq!(
            url("https://meet.example.org:8443").origin(),
            "https://meet.example.org:8443"
        );
        assert_eq!(
            url("https://meet.example.org").join_url("T"),
            "https://meet.example.org/j/T"
        );
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        for (bad, why) in [
            ("meet.example.org", "http"),
            ("ftp://x", "http"),
            ("https://", "host"),
            ("https://:8080/", "host"),
            ("https://u@x/", "user name"),
            ("https://x/?a=1", "query"),
            ("https://x/#top", "fragment"),
            ("https://x /", "spaces"),
        ] {
            let e = bad.parse::<PublicUrl>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
