//! Fault schedules for the fault harness (`tests/faults/`): which fault,
//! for how long, in what order, all from one printed seed, so that any run
//! can be replayed exactly.
//!
//! A schedule sweeps: every fault kind that lasts is tried at every duration
//! of a grid (by default every 0.5 s from 1 s to 10 s, about twice the
//! measured failover time), the instantaneous kinds once per round, and the
//! whole grid is shuffled by the seed. A schedule longer than the grid goes
//! round again, shuffled anew.

/// Parses a kind list: `name` for an instantaneous fault, `name:swept` for
/// one that lasts and is swept over the durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub name: String,
    pub swept: bool,
}

/// One fault of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: String,
    /// How long it lasts; 0 for an instantaneous one.
    pub duration_ms: u64,
}

/// The durations a swept fault is tried at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub from_ms: u64,
    pub to_ms: u64,
    pub step_ms: u64,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            from_ms: 1000,
            to_ms: 10_000,
            step_ms: 500,
        }
    }
}

/// `count` faults from `kinds`, in the order `seed` gives.
pub fn schedule(seed: u64, count: usize, kinds: &[Kind], sweep: Sweep) -> Vec<Fault> {
    let mut grid = Vec::new();
    for kind in kinds {
        if kind.swept && sweep.step_ms > 0 {
            let mut d = sweep.from_ms;
            while d <= sweep.to_ms {
                grid.push(Fault {
                    kind: kind.name.clone(),
                    duration_ms: d,
                });
                d += sweep.step_ms;
            }
        } else {
            grid.push(Fault {
                kind: kind.name.clone(),
                duration_ms: 0,
            });
        }
    }
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count && !grid.is_empty() {
        shuffle(&mut grid, &mut rng);
        out.extend(grid.iter().take(count - out.len()).cloned());
    }
    out
}

/// Parses `kill,freeze:swept,cut:swept`.
pub fn parse_kinds(text: &str) -> anyhow::Result<Vec<Kind>> {
    let kinds: Vec<Kind> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (name, swept) = match item.trim().split_once(':') {
                Some((n, "swept")) => (n, true),
                Some((_, other)) => {
                    anyhow::bail!("{item:?}: unknown qualifier {other:?} (only :swept)")
                }
                None => (item.trim(), false),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                anyhow::bail!("{item:?}: a kind is lowercase letters and dashes");
            }
            Ok(Kind {
                name: name.to_owned(),
                swept,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!kinds.is_empty(), "no fault kinds given");
    Ok(kinds)
}

/// A small, fixed generator (SplitMix64): the same seed gives the same
/// schedule on every machine and with every version of any crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about
    /// for lists this short.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<Kind> {
        parse_kinds("kill,freeze:swept,cut:swept").expect("valid")
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = schedule(42, 50, &kinds(), Sweep::default());
        assert_eq!(a, schedule(42, 50, &kinds(), Sweep::default()));
        assert_ne!(a, schedule(43, 50, &kinds(), Sweep::default()));
    }

    #[test]
    fn one_round_covers_every_duration_of_every_swept_kind_once() {
        // 19 durations (1 s to 10 s by 0.5 s) for each of two swept kinds, plus kill.
        let round = schedule(7, 39, &kinds(), Sweep::default());
        let mut freezes: Vec<u64> = round
            .iter()
            .filter(|f| f.kind == "freeze")
            .map(|f| f.duration_ms)
            .collect();
        freezes.sort_unstable();
        assert_eq!(freezes, (2..=20).map(|h| h * 500).collect::<Vec<_>>());
        assert_eq!(round.iter().filter(|f| f.kind == "kill").count(), 1);
        assert!(round.iter().all(|f| f.kind != "kill" || f.duration_ms == 0));
    }

    #[test]
    fn a_long_schedule_goes_round_again() {
        // Three full rounds of 39.
        let s = schedule(1, 117, &kinds(), Sweep::default());
        assert_eq!(s.len(), 117);
        assert_eq!(s.iter().filter(|f| f.kind == "kill").count(), 3);
        assert_ne!(s[..39], s[39..78], "each round is shuffled anew");
    }

    #[test]
    fn bad_kind_lists_are_refused() {
        for bad in ["", "Kill", "freeze:long", "a b", ",,"] {
            assert!(parse_kinds(bad).is_err(), "{bad:?} accepted");
        }
    }
}
