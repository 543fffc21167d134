//! Exponential backoff for reconnect loops.

use std::time::Duration;

/// Doubles the delay after each failure up to `max`, and starts over after a
/// success. Jitter spreads reconnects of many replicas after a shared outage.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay to sleep now; the next one will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = delay / 4 * u32::from(rand::random::<u8>()) / 255;
        delay + jitter
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let _ = b.next_delay();
        let _ = b.next_delay();
        let capped = b.next_delay();
        assert!(capped >= Duration::from_millis(400) && capped <= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
