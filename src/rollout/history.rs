//! A channel's rollout history: each version's manifests in order (the superseded ones from
//! `<channel>/history/`, then the current one), and the stages they opened.
//!
//! A stage is the band of cohort buckets one raise of the percentage opened
//! ([`Stage`]): 5 % then 25 % then 100 % are the stages 0–5, 5–25 and 25–100. Only a
//! percentage above every earlier one opens a band; a lowered one (`--force`) opens none,
//! since the devices of the higher band may already have the release. Pausing and resuming
//! change no band. The stage a rollout is in is the last band opened.

use std::collections::BTreeMap;

use device_fw::fleet::Stage;

use crate::bucket::{Bucket, BucketError};
use crate::channel::{self, Facts, HISTORY, RolloutSpec};

/// Superseded manifests read for the history at most; older ones are left out.
const MAX_ENTRIES: usize = 1000;

/// One state a version's manifest had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the manifest said (everyone, for one without a `rollout` member).
    pub rollout: RolloutSpec,
    /// When it stopped being current (the history entry's time, RFC 3339), `None` for the
    /// current one.
    pub until: Option<String>,
    /// The history entry, `None` for the current manifest.
    pub key: Option<String>,
}

/// One version's manifests, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub version: String,
    /// Whether the channel's current manifest is this version.
    pub current: bool,
    pub steps: Vec<Step>,
}

impl Timeline {
    /// The bands opened, in order; at least one (`0–0 %` when only listed devices were in).
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = Vec::new();
        let mut high = 0;
        for step in &self.steps {
            if step.rollout.percent > high {
                stages.push(Stage {
                    from_percent: high,
                    to_percent: step.rollout.percent,
                });
                high = step.rollout.percent;
            }
        }
        if stages.is_empty() {
            stages.push(Stage {
                from_percent: 0,
                to_percent: if self.steps.is_empty() { 100 } else { 0 },
            });
        }
        stages
    }

    /// The devices the latest manifest lists: they count in every stage.
    pub fn listed(&self) -> Vec<&str> {
        self.steps
            .last()
            .map(|s| s.rollout.devices.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// What the history holds, and what of it could not be used.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Oldest version first; the current one last.
    pub timelines: Vec<Timeline>,
    /// History entries not used, and why (they do not verify with the profile's keys, are
    /// for another product or channel, or cannot be read).
    pub skipped: Vec<(String, String)>,
}

impl History {
    pub fn of(&self, version: &str) -> Option<&Timeline> {
        self.timelines.iter().find(|t| t.version == version)
    }
}

/// A manifest of the history, or the current one (`key: None`).
struct Entry {
    key: Option<String>,
    bytes: Vec<u8>,
    facts: Facts,
    until: Option<String>,
}

/// Reads `<channel>/history/` and puts the current manifest (`current`, as read) last.
/// Entries are verified with `trusted`: one that does not verify is skipped, as is a repeat
/// of the manifest before it (a job that lost a race made a second copy).
pub async fn read(
    bucket: &Bucket,
    channel: &str,
    trusted: &[[u8; 32]],
    current: Option<(&Facts, &[u8])>,
) -> Result<History, BucketError> {
    let folder = format!("{channel}/{HISTORY}");
    let mut names: Vec<String> = bucket
        .list(&folder)
        .await?
        .objects
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| channel::parse_history_name(name).is_some())
        .collect();
    names.sort();
    let mut history = History::default();
    if names.len() > MAX_ENTRIES {
        let left = names.len() - MAX_ENTRIES;
        history.skipped.push((
            folder.clone(),
            format!("{left} older entries beyond the newest {MAX_ENTRIES} were not read"),
        ));
        names.drain(..left);
    }
    let mut entries: Vec<Entry> = Vec::new();
    for name in names {
        let rel = format!("{folder}/{name}");
        let Some(read) = bucket.read_manifest(&rel).await? else {
            continue;
        };
        let held = channel::inspect(&read.bytes, trusted);
        let facts = match held.facts {
            Some(f) if held.verified && f.channel == channel => f,
            Some(_) if held.verified => {
                history
                    .skipped
                    .push((rel, "it is a manifest of another channel".into()));
                continue;
            }
            _ => {
                let why = held.problem.unwrap_or_else(|| "it is not a manifest".into());
                history.skipped.push((rel, format!("it does not verify: {why}")));
                continue;
            }
        };
        let until = channel::parse_history_name(&name).map(|h| channel::rfc3339_of_compact(h.time));
        entries.push(Entry {
            key: Some(rel),
            bytes: read.bytes,
            facts,
            until,
        });
    }
    if let Some((facts, bytes)) = current {
        entries.push(Entry {
            key: None,
            bytes: bytes.to_vec(),
            facts: facts.clone(),
            until: None,
        });
    }
    let mut order: Vec<String> = Vec::new();
    let mut by_version: BTreeMap<String, Timeline> = BTreeMap::new();
    let mut last: Option<Vec<u8>> = None;
    let current_bytes = current.map(|(_, b)| b);
    for Entry {
        key,
        bytes,
        facts,
        until,
    } in entries
    {
        let repeat = last.as_deref() == Some(bytes.as_slice());
        // A copy of the current manifest in the history is a lost race's leftover.
        let leftover = key.is_some() && current_bytes == Some(bytes.as_slice());
        last = Some(bytes);
        if repeat || leftover {
            continue;
        }
        let timeline = by_version.entry(facts.version.clone()).or_insert_with(|| {
            order.push(facts.version.clone());
            Timeline {
                version: facts.version.clone(),
                current: false,
                steps: Vec::new(),
            }
        });
        timeline.current = key.is_none();
        timeline.steps.push(Step {
            rollout: facts.effective_rollout(),
            until,
            key,
        });
    }
    history.timelines = order.into_iter().filter_map(|v| by_version.remove(&v)).collect();
    // The current version last, whatever order its manifests came in.
    history.timelines.sort_by_key(|t| t.current);
    Ok(history)
}

#[cfg(test)]
mod tests {
    use device_fw::wire::rollout::RolloutState;

    use super::*;

    fn step(percent: u8) -> Step {
        Step {
            rollout: RolloutSpec {
                percent,
                state: RolloutState::Active,
                devices: vec![],
            },
            until: None,
            key: None,
        }
    }

    fn stages(percents: &[u8]) -> Vec<(u8, u8)> {
        Timeline {
            version: "1.0.0".into(),
            current: true,
            steps: percents.iter().copied().map(step).collect(),
        }
        .stages()
        .into_iter()
        .map(|s| (s.from_percent, s.to_percent))
        .collect()
    }

    #[test]
    fn each_raise_opens_a_band_and_a_lowering_opens_none() {
        assert_eq!(stages(&[5]), [(0, 5)]);
        assert_eq!(stages(&[5, 5, 25, 100]), [(0, 5), (5, 25), (25, 100)]);
        assert_eq!(stages(&[25, 10, 30]), [(0, 25), (25, 30)]);
        assert_eq!(stages(&[0]), [(0, 0)]);
        // Reports for a version no manifest in the history names: the whole fleet.
        assert_eq!(stages(&[]), [(0, 100)]);
    }
}
