//! The shard's own periodic work, one timer per job with the job as the reason for the
//! wake-up: the rooms' active speakers, every subscriber's allocation (and dynacast), and
//! the subscription reports. Peer connections have their own table ([`crate::timers`]).

use std::time::{Duration, Instant};

/// A periodic job of the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Re-evaluate each room's active speaker.
    Speakers,
    /// Recompute every subscriber's allocation, then which layers publishers send.
    Allocation,
    /// Report every subscriber's subscriptions ([`crate::api::Event::SubscriptionStats`]).
    Reports,
}

impl Job {
    const ALL: [Job; 3] = [Job::Speakers, Job::Allocation, Job::Reports];

    pub(crate) fn interval(self) -> Duration {
        match self {
            Job::Speakers => Duration::from_millis(100),
            Job::Allocation => Duration::from_millis(500),
            Job::Reports => crate::dynacast::STATS_INTERVAL,
        }
    }
}

/// When each job last ran.
#[derive(Debug)]
pub(crate) struct Periodic {
    last: [Instant; 3],
}

impl Periodic {
    /// Every job's first period starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self { last: [now; 3] }
    }

    /// The jobs due at `now` (in the order speakers, allocation, reports), each with the
    /// time since it last ran; each is counted as run at `now`.
    pub fn take_due(&mut self, now: Instant) -> [Option<(Job, Duration)>; 3] {
        Job::ALL.map(|job| {
            let last = &mut self.last[job as usize];
            let since = now.saturating_duration_since(*last);
            (since >= job.interval()).then(|| {
                *last = now;
                (job, since)
            })
        })
    }

    /// When the next of `jobs` is due.
    pub fn next(&self, jobs: &[Job]) -> Option<Instant> {
        jobs.iter()
            .map(|j| self.last[*j as usize] + j.interval())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_runs_on_its_own_period() {
        let t0 = crate::test_clock::origin();
        let mut p = Periodic::new(t0);
        let due = |p: &mut Periodic, ms| -> Vec<Job> {
            p.take_due(t0 + Duration::from_millis(ms))
                .into_iter()
                .flatten()
                .map(|(j, _)| j)
                .collect()
        };
        assert_eq!(due(&mut p, 50), vec![]);
        assert_eq!(p.next(&Job::ALL), Some(t0 + Duration::from_millis(100)));
        assert_eq!(due(&mut p, 100), vec![Job::Speakers]);
        assert_eq!(due(&mut p, 150), vec![]);
        assert_eq!(due(&mut p, 520), vec![Job::Speakers, Job::Allocation]);
        assert_eq!(
            p.next(&[Job::Allocation, Job::Reports]),
            Some(t0 + Duration::from_millis(1020))
        );
        let at_2s = p.take_due(t0 + Duration::from_secs(2));
        assert_eq!(
            at_2s[2],
            Some((Job::Reports, Duration::from_secs(2))),
            "with the time since it last ran"
        );
        assert_eq!(p.next(&[]), None);
    }
}
