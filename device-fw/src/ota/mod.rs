//! The download engine: from a URL to a written, hashed image in the inactive slot.
//!
//! [`planner`] sizes each HTTP Range chunk so the connection never idles past the carrier
//! NAT's timeout, [`slot`] writes the slot the way NOR flash wants it written, and
//! [`engine`] drives both over the HTTP client, resuming after every kind of failure.

pub mod engine;
pub mod inflate;
pub mod inflating;
pub mod journal;
pub mod lzma;
pub mod patch;
pub mod planner;
pub mod policy;
pub mod schedule;
pub mod slot;
pub mod update;
pub mod window;

pub use engine::{
    Checkpoint, DownloadConfig, DownloadError, DownloadMode, DownloadReport, EventSink, ImageSink, ImageTarget, Mark,
    OtaEvent, download,
};
pub use inflating::InflatingWriter;
pub use planner::{ChunkPlanner, ChunkPolicy};
pub use slot::{Slot, SlotError, SlotWriter};
