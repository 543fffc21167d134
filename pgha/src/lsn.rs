//! A WAL position as PostgreSQL prints it (`16/B374D848`).

use std::fmt;
use std::str::FromStr;

/// A write-ahead-log position: bytes since the start of the cluster's WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Lsn> {
        let (hi, lo) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("a WAL position looks like 16/B374D848, got {s:?}"))?;
        let part = |p: &str| {
            if p.is_empty() || p.len() > 8 {
                anyhow::bail!("a WAL position looks like 16/B374D848, got {s:?}");
            }
            u32::from_str_radix(p, 16)
                .map_err(|_| anyhow::anyhow!("a WAL position looks like 16/B374D848, got {s:?}"))
        };
        Ok(Lsn((u64::from(part(hi)?) << 32) | u64::from(part(lo)?)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_as_postgres_does() {
        for text in ["0/0", "0/3000060", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            let lsn: Lsn = text.parse().expect("valid");
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("1/0".parse::<Lsn>().expect("valid").0, 1 << 32);
        assert!("0/3000060".parse::<Lsn>().expect("valid") < "1/0".parse().expect("valid"));
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "/",
            "0/",
            "/1",
            "12",
            "0/xyz",
            "1/2/3",
            "123456789/0",
            "-1/0",
            "0/ 1",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} accepted");
        }
    }
}
