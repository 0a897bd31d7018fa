//! The control protocol, one line each way over the Unix socket named by `SLUICE_SHIM_SOCKET`:
//!
//! | request            | reply                                                             |
//! |--------------------|-------------------------------------------------------------------|
//! | `PREFETCH device`  | `OK bytes=<n> count=<k> ms=<t>` once every managed allocation is on its device |
//! | `PREFETCH host`    | the same, to host memory                                          |
//! | `ADVISE device`    | `OK bytes=<n> count=<k>`: preferred location set to the device    |
//! | `ADVISE host`      | the same, preferred location host                                 |
//! | `STATS`            | `OK bytes=<n> count=<k> managed_bytes=<m> budget=<b or none>`     |
//!
//! Any failure is `ERR <message>`. Keywords are case-insensitive; replies are `key=value` pairs
//! after `OK` so that a client can ignore keys it does not know.

use std::fmt;

/// Where memory goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The device of the allocation's context (`device` on the wire).
    Device,
    /// Host memory (`host` on the wire).
    Host,
}

/// One request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PREFETCH <target>`: move every managed allocation there and wait until it is.
    Prefetch(Target),
    /// `ADVISE <target>`: set every managed allocation's preferred location.
    Advise(Target),
    /// `STATS`: report the registry's totals and the budget.
    Stats,
}

/// A request that could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line holds no word.
    #[error("empty request")]
    Empty,
    /// The first word is no known command (the word, upper-cased).
    #[error("unknown command {0:?} (PREFETCH, ADVISE, STATS)")]
    Unknown(String),
    /// The command (named) lacks its one argument, has a bad one, or has more than one.
    #[error("{0} needs one argument, device or host")]
    Target(&'static str),
    /// `STATS` was given an argument.
    #[error("STATS takes no argument")]
    Extra,
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or(ParseError::Empty)?.to_ascii_uppercase();
    let arg = words.next().map(str::to_ascii_lowercase);
    let more = words.next().is_some();
    let target = |name| match (arg.as_deref(), more) {
        (Some("device"), false) => Ok(Target::Device),
        (Some("host"), false) => Ok(Target::Host),
        _ => Err(ParseError::Target(name)),
    };
    match verb.as_str() {
        "PREFETCH" => target("PREFETCH").map(Command::Prefetch),
        "ADVISE" => target("ADVISE").map(Command::Advise),
        "STATS" if arg.is_none() => Ok(Command::Stats),
        "STATS" => Err(ParseError::Extra),
        _ => Err(ParseError::Unknown(verb)),
    }
}

/// One reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A finished `PREFETCH`.
    Moved {
        /// Bytes prefetched.
        bytes: u64,
        /// Allocations prefetched.
        count: u64,
        /// Wall time until every prefetch completed, ms.
        ms: f64,
    },
    /// A finished `ADVISE`.
    Advised {
        /// Bytes advised.
        bytes: u64,
        /// Allocations advised.
        count: u64,
    },
    /// The answer to `STATS`.
    Stats {
        /// Bytes of all live allocations.
        bytes: u64,
        /// Number of live allocations.
        count: u64,
        /// Bytes of the managed ones.
        managed_bytes: u64,
        /// The configured budget, bytes (`none` on the wire when unset).
        budget: Option<u64>,
    },
    /// Any failure (`ERR <message>`, the message flattened to one line).
    Error(String),
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Moved { bytes, count, ms } => {
                write!(f, "OK bytes={bytes} count={count} ms={ms:.3}")
            }
            Reply::Advised { bytes, count } => write!(f, "OK bytes={bytes} count={count}"),
            Reply::Stats {
                bytes,
                count,
                managed_bytes,
                budget,
            } => {
                write!(
                    f,
                    "OK bytes={bytes} count={count} managed_bytes={managed_bytes} budget="
                )?;
                match budget {
                    Some(b) => write!(f, "{b}"),
                    None => f.write_str("none"),
                }
            }
            // One line, whatever the message holds.
            Reply::Error(m) => write!(f, "ERR {}", m.replace(['\n', '\r'], " ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("PREFETCH host"), Ok(Command::Prefetch(Target::Host)));
        assert_eq!(
            parse("prefetch Device\n"),
            Ok(Command::Prefetch(Target::Device))
        );
        assert_eq!(parse(" ADVISE host "), Ok(Command::Advise(Target::Host)));
        assert_eq!(parse("STATS"), Ok(Command::Stats));
    }

    #[test]
    fn rejects_malformed_requests() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("PREFETCH"), Err(ParseError::Target("PREFETCH")));
        assert_eq!(parse("PREFETCH gpu"), Err(ParseError::Target("PREFETCH")));
        assert_eq!(parse("ADVISE host now"), Err(ParseError::Target("ADVISE")));
        assert_eq!(parse("STATS all"), Err(ParseError::Extra));
        assert_eq!(parse("EVICT"), Err(ParseError::Unknown("EVICT".into())));
    }

    #[test]
    fn replies_are_single_key_value_lines() {
        let r = Reply::Moved {
            bytes: 10,
            count: 2,
            ms: 1.5,
        };
        assert_eq!(r.to_string(), "OK bytes=10 count=2 ms=1.500");
        let s = Reply::Stats {
            bytes: 1,
            count: 1,
            managed_bytes: 1,
            budget: None,
        };
        assert_eq!(
            s.to_string(),
            "OK bytes=1 count=1 managed_bytes=1 budget=none"
        );
        assert_eq!(Reply::Error("a\nb".into()).to_string(), "ERR a b");
    }
}
