//! The event types as every part of a node reads them, kept current without a restart.
//!
//! Event types are rows (`store::event_types`) that the vendor changes through the API, and
//! every node must see a change at once. Each change raises a version counter in the same
//! transaction, so staying current costs one indexed read of one row, and only when the
//! catalog is used: [`LiveCatalog::fresh`] compares the counter at most every
//! [`RECHECK`] and reloads the rows only when it moved. An idle node reads nothing. The node
//! that made a change reloads at once ([`LiveCatalog::reload`]), so its own answers never lag.
//!
//! Three views come from one load: the types events are accepted for (active ones), the types
//! ticket text is rendered from (inactive ones too: an event accepted before its type was
//! deactivated still delivers with its own text), and the active types that are off by default.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use psabridge_core::catalog::Catalog;
use psabridge_core::event_types::{
    EventTypeDef, active_catalog, off_by_default, rendering_catalog,
};
use psabridge_store::{Millis, Store, StoreError};

/// How stale a node's catalog may be when it is used: a change through another node is
/// effective here within this time.
pub const RECHECK: Duration = Duration::from_millis(250);

/// One load of the event types.
#[derive(Debug)]
pub struct Snapshot {
    /// The counter the rows were read at; `None` for a catalog that does not follow the store.
    pub version: Option<i64>,
    /// Active types: what events may be sent as and settings may name.
    pub accepting: Arc<Catalog>,
    /// Every type, inactive ones too: what ticket and message text is rendered from.
    pub rendering: Arc<Catalog>,
    /// Active types a partner gets only by naming them (`routing`).
    pub off_by_default: BTreeSet<String>,
}

impl Snapshot {
    fn fixed(catalog: Arc<Catalog>) -> Snapshot {
        Snapshot {
            version: None,
            accepting: catalog.clone(),
            rendering: catalog,
            off_by_default: BTreeSet::new(),
        }
    }

    fn of(version: i64, defs: &[EventTypeDef]) -> Snapshot {
        Snapshot {
            version: Some(version),
            accepting: Arc::new(active_catalog(defs)),
            rendering: Arc::new(rendering_catalog(defs)),
            off_by_default: off_by_default(defs),
        }
    }
}

/// The node's event types: a fixed catalog until [`LiveCatalog::follow`] ties it to the store.
pub struct LiveCatalog {
    current: RwLock<Arc<Snapshot>>,
    store: RwLock<Option<Store>>,
    last_check: Mutex<Option<Instant>>,
    /// One reload at a time; the others use the snapshot they have.
    reloading: tokio::sync::Mutex<()>,
}

impl LiveCatalog {
    /// A catalog that never changes (tests, and tools that read the file only).
    pub fn fixed(catalog: Arc<Catalog>) -> LiveCatalog {
        LiveCatalog {
            current: RwLock::new(Arc::new(Snapshot::fixed(catalog))),
            store: RwLock::new(None),
            last_check: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Seed the store with the catalog this node started with (types already there, changed
    /// through the API or not, are kept) and follow the store from now on.
    pub async fn follow(&self, store: &Store, now: Millis) -> Result<(), StoreError> {
        let seed: Vec<EventTypeDef> = self
            .snapshot()
            .accepting
            .iter()
            .map(EventTypeDef::seeded)
            .collect();
        let added = store.seed_event_types(&seed, now).await?;
        if added > 0 {
            tracing::info!(added, "event types seeded from the catalog file");
        }
        *self.store.write().expect("catalog lock") = Some(store.clone());
        self.reload().await
    }

    /// What the node holds now, without looking at the store.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("catalog lock").clone()
    }

    /// The snapshot, first brought up to date if it was last checked more than [`RECHECK`]
    /// ago. A store that cannot be read leaves the snapshot as it was (logged): ingestion
    /// keeps working on what the node knew.
    pub async fn fresh(&self) -> Arc<Snapshot> {
        let due = {
            let mut last = self.last_check.lock().expect("catalog lock");
            let due = last.is_none_or(|t| t.elapsed() >= RECHECK);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(e) = self.check().await {
            tracing::warn!(error = %e, "event types: cannot read their version; keeping the last ones");
        }
        self.snapshot()
    }

    /// Read the rows again now (after this node changed them).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let Some(store) = self.store.read().expect("catalog lock").clone() else {
            return Ok(());
        };
        let _one = self.reloading.lock().await;
        let (version, defs) = store.event_type_defs().await?;
        *self.current.write().expect("catalog lock") = Arc::new(Snapshot::of(version, &defs));
        *self.last_check.lock().expect("catalog lock") = Some(Instant::now());
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        let Some(store) = self.store.read().expect("catalog lock").clone() else {
            return Ok(());
        };
        let version = store.event_types_version().await?;
        if self.snapshot().version != Some(version) {
            self.reload().await?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCatalog")
            .field("version", &self.snapshot().version)
            .finish_non_exhaustive()
    }
}
