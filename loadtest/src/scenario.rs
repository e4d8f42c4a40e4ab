//! Scenarios: who joins which room, with what media, when.

use std::time::Duration;

use clap::{Args, ValueEnum};
use sfu_core::testkit::{ClientSpec, LayerSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// R rooms × P participants; everyone publishes audio + simulcast video and subscribes.
    Conference,
    /// R rooms × (1 publisher + S viewers).
    Webinar,
    /// R rooms × (P audio publishers + S listeners).
    AudioOnly,
}

#[derive(Debug, Clone, Args, serde::Serialize)]
pub struct ScenarioArgs {
    #[arg(long, value_enum, default_value = "conference")]
    pub scenario: Kind,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishing participants per room (conference, audio-only).
    #[arg(long, default_value_t = 3)]
    pub participants: usize,
    /// Viewers / listeners per room (webinar, audio-only).
    #[arg(long, default_value_t = 0)]
    pub viewers: usize,
    /// Seconds of media after the last join.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Joins per second.
    #[arg(long, default_value_t = 10.0)]
    pub ramp: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulcast layer bitrates in kbps, lowest first.
    #[arg(long, value_delimiter = ',', default_value = "150,500,1700")]
    pub kbps: Vec<u32>,
    /// Simulcast layer frame rates, lowest first.
    #[arg(long, value_delimiter = ',', default_value = "7.5,15,30")]
    pub fps: Vec<f32>,
}

/// One simulated participant to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub room: String,
    pub name: String,
    pub spec: ClientSpec,
    pub join_at: Duration,
}

impl ScenarioArgs {
    fn video(&self) -> Vec<LayerSpec> {
        let rids = ["q", "h", "f"];
        self.kbps
            .iter()
            .zip(self.fps.iter())
            .take(3)
            .enumerate()
            .map(|(i, (k, f))| LayerSpec {
                rid: Some(rids[i].to_string()),
                kbps: *k,
                fps: *f,
            })
            .collect()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rooms >= 1 && self.rooms <= 1_000,
            "--rooms must be 1..=1000"
        );
        anyhow::ensure!(
            self.participants <= 1_000 && self.viewers <= 10_000,
            "too many participants"
        );
        anyhow::ensure!(
            self.duration > 0.0 && self.duration <= 3_600.0,
            "--duration must be in (0, 3600] s"
        );
        anyhow::ensure!(
            self.ramp > 0.0 && self.ramp <= 1_000.0,
            "--ramp must be in (0, 1000] joins/s"
        );
        anyhow::ensure!(
            !self.kbps.is_empty() && self.kbps.len() == self.fps.len() && self.kbps.len() <= 3,
            "--kbps and --fps need 1-3 matching values"
        );
        Ok(())
    }

    /// Everyone, in join order (round-robin over rooms).
    pub fn plans(&self) -> Vec<Plan> {
        let per_room: Vec<(String, ClientSpec)> = match self.scenario {
            Kind::Conference => (0..self.participants)
                .map(|i| {
                    (
                        format!("p{i}"),
                        ClientSpec {
                            video: self.video(),
                            ..ClientSpec::av()
                        },
                    )
                })
                .collect(),
            Kind::Webinar => std::iter::once((
                "host".to_string(),
                ClientSpec {
                    video: self.video(),
                    subscribe: false,
                    ..ClientSpec::av()
                },
            ))
            .chain((0..self.viewers).map(|i| (format!("v{i}"), ClientSpec::viewer())))
            .collect(),
            Kind::AudioOnly => (0..self.participants)
                .map(|i| (format!("a{i}"), ClientSpec::audio_only()))
                .chain((0..self.viewers).map(|i| (format!("l{i}"), ClientSpec::viewer())))
                .collect(),
        };
        let mut out = Vec::new();
        for (who, (name, spec)) in per_room.iter().enumerate() {
            for r in 0..self.rooms {
                let i = out.len();
                out.push(Plan {
                    room: format!("load-{}-{r}", self.seed),
                    name: format!("{name}-r{r}-{who}"),
                    spec: spec.clone(),
                    join_at: Duration::from_secs_f64(i as f64 / self.ramp),
                });
            }
        }
        out
    }

    pub fn publishers_per_room(&self) -> usize {
        match self.scenario {
            Kind::Conference | Kind::AudioOnly => self.participants,
            Kind::Webinar => 1,
        }
    }

    /// The same scenario as command-line arguments (for a child run).
    pub fn to_args(&self) -> Vec<String> {
        let kind = match self.scenario {
            Kind::Conference => "conference",
            Kind::Webinar => "webinar",
            Kind::AudioOnly => "audio-only",
        };
        let join = |v: Vec<String>| v.join(",");
        vec![
            "--scenario".into(),
            kind.into(),
            "--rooms".into(),
            self.rooms.to_string(),
            "--participants".into(),
            self.participants.to_string(),
            "--viewers".into(),
            self.viewers.to_string(),
            "--duration".into(),
            self.duration.to_string(),
            "--ramp".into(),
            self.ramp.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--kbps".into(),
            join(self.kbps.iter().map(|k| k.to_string()).collect()),
            "--fps".into(),
            join(self.fps.iter().map(|k| k.to_string()).collect()),
        ]
    }

    /// Subscribed tracks once everyone is in (for per-track memory and completeness).
    pub fn subscribed_tracks(&self) -> usize {
        let per_room = match self.scenario {
            Kind::Conference => self.participants * self.participants.saturating_sub(1) * 2,
            Kind::Webinar => self.viewers * 2,
            Kind::AudioOnly => {
                self.participants * (self.participants.saturating_sub(1) + self.viewers)
            }
        };
        per_room * self.rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        s: ScenarioArgs,
    }

    fn parse(args: &[&str]) -> ScenarioArgs {
        T::parse_from(std::iter::once("t").chain(args.iter().copied())).s
    }

    #[test]
    fn plans_per_scenario() {
        let c = parse(&["--rooms", "2", "--participants", "3", "--ramp", "4"]);
        let p = c.plans();
        assert_eq!(p.len(), 6);
        assert_eq!(p.iter().filter(|x| x.room.ends_with("-0")).count(), 3);
        assert_eq!(p[5].join_at, Duration::from_millis(1_250));
        assert_eq!(p[0].spec.video.len(), 3);
        assert_eq!(c.subscribed_tracks(), 2 * 3 * 2 * 2);

        let w = parse(&["--scenario", "webinar", "--viewers", "5"]);
        let p = w.plans();
        assert_eq!(p.len(), 6);
        assert_eq!(p.iter().filter(|x| x.spec.publishes()).count(), 1);
        assert_eq!(w.subscribed_tracks(), 10);

        let a = parse(&[
            "--scenario",
            "audio-only",
            "--participants",
            "4",
            "--viewers",
            "2",
        ]);
        let p = a.plans();
        assert!(p.iter().all(|x| x.spec.video.is_empty()));
        assert_eq!(a.subscribed_tracks(), 4 * 5);
        assert!(parse(&["--kbps", "100,200", "--fps", "10"])
            .validate()
            .is_err());
        let round: Vec<String> = a.to_args();
        let back = parse(&round.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert_eq!(back.to_args(), round);
        assert!(parse(&["--duration", "0"]).validate().is_err());
    }
}
