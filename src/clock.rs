//! The one clock: the system's, or a fixed instant (`--now`) for reproducible answers in
//! tests, demos and CI pipelines.

use crate::api::Timestamp;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    Fixed(Timestamp),
}

impl Clock {
    pub fn now(self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(at) => at,
        }
    }
}
