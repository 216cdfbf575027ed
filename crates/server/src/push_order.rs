//! The order in which one device's pushes reach storage on this server. A device may send its
//! next batch while the last is still being stored, naming the last operation of the batch it
//! follows; such a push has its body read and checked meanwhile, then waits while a push of the
//! same device in flight follows an earlier operation (or none), and only then goes to storage.
//! Batches sent at nearly the same moment may arrive in either order; each still waits for the
//! ones before it, as long as those have arrived. Across servers nothing waits: storage checks
//! the named operation anyway ([`Storage::push_after`](crate::storage::Storage::push_after))
//! and refuses a batch that came too early, which the device then sends again.
//!
//! Must never depend on storage or on HTTP: it only orders.

use std::collections::{BTreeSet, HashMap};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

/// The pushes in flight on this server, by device, in the order of the operations they follow.
#[derive(Debug, Default)]
pub struct PushOrder {
    /// Each device's pushes neither answered nor queued in storage: the sequence number each
    /// follows (0 for none) and its arrival number.
    in_flight: Mutex<HashMap<Uuid, BTreeSet<Place>>>,
    /// The next arrival number.
    next: AtomicU64,
    /// Told whenever a push gives its place up.
    left: Notify,
}

/// Where a push stands: after the operation it follows, then by arrival.
type Place = (u64, u64);

/// A push's place in its device's order, from its arrival until it is queued in storage (see
/// [`PushTurn::queued`]) or dropped (once answered).
#[derive(Debug)]
pub struct PushTurn {
    order: Arc<PushOrder>,
    device_id: Uuid,
    place: Place,
    /// Whether the place was given up already.
    gone: bool,
}

impl PushOrder {
    fn pushes(&self) -> MutexGuard<'_, HashMap<Uuid, BTreeSet<Place>>> {
        // A panic while the map was held leaves it whole: every change is one insert or remove.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that a push of `device_id` arrived, following the device's operation
    /// `after_seq` (`None` for a push that follows nothing: the first of a sync run).
    pub fn arrive(self: &Arc<Self>, device_id: Uuid, after_seq: Option<u64>) -> PushTurn {
        let arrival = self.next.fetch_add(1, Ordering::Relaxed);
        let place = (after_seq.unwrap_or(0), arrival);
        self.pushes().entry(device_id).or_default().insert(place);
        PushTurn {
            order: Arc::clone(self),
            device_id,
            place,
            gone: false,
        }
    }

    /// Pushes of `device_id` in flight and not yet queued in storage.
    #[cfg(test)]
    fn in_flight(&self, device_id: Uuid) -> usize {
        self.pushes().get(&device_id).map_or(0, BTreeSet::len)
    }
}

impl PushTurn {
    fn is_due(&self) -> bool {
        self.order
            .pushes()
            .get(&self.device_id)
            .and_then(|places| places.first())
            .is_none_or(|(first_after, _)| *first_after >= self.place.0)
    }

    /// Waits while a push of the device in flight follows an earlier operation than this one.
    /// Pushes that follow the same operation do not wait for each other, and a push only ever
    /// waits for ones that follow less, so no two wait for each other.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so that a push leaving in between still wakes this.
            let mut left = pin!(self.order.left.notified());
            left.as_mut().enable();
            if self.is_due() {
                return;
            }
            left.await;
        }
    }

    /// Gives the place up before the push is answered: for a backend that stores pushes in
    /// the order they were queued, once this one is queued, so that the pushes behind it are
    /// queued behind it while it is being stored.
    pub fn queued(&mut self) {
        if std::mem::replace(&mut self.gone, true) {
            return;
        }
        {
            let mut pushes = self.order.pushes();
            if let Some(places) = pushes.get_mut(&self.device_id) {
                places.remove(&self.place);
                if places.is_empty() {
                    pushes.remove(&self.device_id);
                }
            }
        }
        self.order.left.notify_waiters();
    }
}

impl Drop for PushTurn {
    fn drop(&mut self) {
        self.queued();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits for `turn` on a task of its own.
    fn waiting(turn: PushTurn) -> tokio::task::JoinHandle<PushTurn> {
        tokio::spawn(async move {
            turn.wait().await;
            turn
        })
    }

    /// Lets the waiting tasks run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_push_waits_for_the_pushes_of_its_device_that_follow_less() {
        let order = Arc::new(PushOrder::default());
        let (device, other) = (Uuid::now_v7(), Uuid::now_v7());
        // Sent in order, arrived out of it: the third batch first, then the first two.
        let third = order.arrive(device, Some(20));
        let first = order.arrive(device, None);
        let elsewhere = order.arrive(other, Some(5));
        let second = order.arrive(device, Some(10));
        assert_eq!(order.in_flight(device), 3);
        // The first of a run, and another device's push, go at once.
        first.wait().await;
        elsewhere.wait().await;
        let (second, third) = (waiting(second), waiting(third));
        settle().await;
        assert!(!second.is_finished() && !third.is_finished());
        drop(elsewhere);
        settle().await;
        assert!(
            !second.is_finished(),
            "another device's push frees none of this one's"
        );
        drop(first);
        let second = second.await.unwrap();
        settle().await;
        assert!(!third.is_finished(), "the third waits for the second too");
        drop(second);
        drop(third.await.unwrap());
        assert_eq!(order.in_flight(device), 0);
        assert!(order.pushes().is_empty(), "nothing is left behind");
    }

    #[tokio::test]
    async fn a_push_queued_in_storage_lets_the_next_go_before_it_is_answered() {
        let order = Arc::new(PushOrder::default());
        let device = Uuid::now_v7();
        let mut first = order.arrive(device, None);
        let second = waiting(order.arrive(device, Some(10)));
        settle().await;
        assert!(!second.is_finished());
        first.queued();
        let second = second.await.unwrap();
        assert_eq!(
            order.in_flight(device),
            1,
            "the second keeps its place until queued"
        );
        first.queued();
        drop(first);
        assert_eq!(
            order.in_flight(device),
            1,
            "giving a place up twice frees no other"
        );
        drop(second);
        assert_eq!(order.in_flight(device), 0);
    }

    #[tokio::test]
    async fn pushes_that_follow_the_same_operation_do_not_wait_for_each_other() {
        let order = Arc::new(PushOrder::default());
        let device = Uuid::now_v7();
        // A batch sent again by a new run while the first delivery is still in flight.
        let sent = order.arrive(device, Some(10));
        let again = order.arrive(device, Some(10));
        tokio::time::timeout(Duration::from_secs(5), async {
            sent.wait().await;
            again.wait().await;
        })
        .await
        .expect("neither waits");
    }

    #[tokio::test]
    async fn a_push_that_gives_up_frees_the_ones_behind_it() {
        let order = Arc::new(PushOrder::default());
        let device = Uuid::now_v7();
        let first = order.arrive(device, None);
        let second = order.arrive(device, Some(10));
        let third = order.arrive(device, Some(20));
        // The second's request goes away while it waits: its turn is dropped unfinished.
        let gone = tokio::spawn(async move { second.wait().await });
        settle().await;
        gone.abort();
        let _ = gone.await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), third.wait())
            .await
            .expect("the third goes once the first left and the second gave up");
    }
}
