//! Taking a review's body in: at most `max_in_flight` reviews at once, every body counted
//! against one byte budget while it is read (so the bodies held in memory never exceed it,
//! whatever the number of connections or streams), the whole body within a deadline, and
//! at most 7 MiB. A review over a limit is refused at once instead of waiting for room.

use crate::decision::review::MAX_REVIEW_BYTES;
use crate::listener::Limit;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_LENGTH;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewLimits {
    /// Reviews being read or answered at once.
    pub max_in_flight: usize,
    /// Bytes of request bodies held at once, over all connections.
    pub body_budget: usize,
    /// Time to receive a whole body, from its request's head.
    pub body_read_timeout: Duration,
}

impl Default for ReviewLimits {
    fn default() -> Self {
        ReviewLimits {
            max_in_flight: 64,
            body_budget: 64 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a body was not taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Over a server limit: the client may retry.
    Limit(Limit),
    /// Over 7 MiB (the size, or how much was read before giving up).
    TooLarge(String),
    /// The body could not be read.
    Unreadable(String),
}

/// The review limits' shared state.
pub struct Intake {
    pub limits: ReviewLimits,
    in_flight: Semaphore,
    budget: Semaphore,
}

/// One admitted review: its body and the room it holds until dropped.
pub struct Admitted<'a> {
    pub body: Bytes,
    _in_flight: SemaphorePermit<'a>,
    _budget: Option<SemaphorePermit<'a>>,
}

impl Intake {
    pub fn new(limits: ReviewLimits) -> Self {
        Intake {
            in_flight: Semaphore::new(limits.max_in_flight.min(Semaphore::MAX_PERMITS)),
            budget: Semaphore::new(limits.body_budget.min(Semaphore::MAX_PERMITS)),
            limits,
        }
    }

    /// The body of `req` within every limit.
    pub async fn admit(&self, req: Request<Incoming>) -> Result<Admitted<'_>, Refused> {
        let in_flight = self
            .in_flight
            .try_acquire()
            .map_err(|_| Refused::Limit(Limit::InFlight))?;
        let (body, budget) = tokio::time::timeout(self.limits.body_read_timeout, self.read(req))
            .await
            .map_err(|_| Refused::Limit(Limit::BodyTime))??;
        Ok(Admitted {
            body,
            _in_flight: in_flight,
            _budget: budget,
        })
    }

    /// Reads the body, taking budget for its declared length up front and for the rest
    /// as it arrives.
    async fn read(
        &self,
        req: Request<Incoming>,
    ) -> Result<(Bytes, Option<SemaphorePermit<'_>>), Refused> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared.filter(|l| *l > MAX_REVIEW_BYTES as u64) {
            return Err(Refused::TooLarge(length.to_string()));
        }
        // Within 7 MiB here, so it fits in usize and u32.
        let declared = declared.map_or(0, |l| l as usize);
        let mut held = None;
        self.take(&mut held, declared)?;
        let mut reserved = declared;
        let mut body = Vec::with_capacity(declared);
        let mut incoming = req.into_body();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| Refused::Unreadable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let length = body.len() + data.len();
            if length > MAX_REVIEW_BYTES {
                return Err(Refused::TooLarge(format!("more than {MAX_REVIEW_BYTES}")));
            }
            if length > reserved {
                self.take(&mut held, length - reserved)?;
                reserved = length;
            }
            body.extend_from_slice(&data);
        }
        Ok((Bytes::from(body), held))
    }

    fn take<'a>(
        &'a self,
        held: &mut Option<SemaphorePermit<'a>>,
        bytes: usize,
    ) -> Result<(), Refused> {
        if bytes == 0 {
            return Ok(());
        }
        let bytes = u32::try_from(bytes).map_err(|_| Refused::Limit(Limit::BodyBudget))?;
        let permit = self
            .budget
            .try_acquire_many(bytes)
            .map_err(|_| Refused::Limit(Limit::BodyBudget))?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}
