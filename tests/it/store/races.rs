//! Two servers on one PostgreSQL, racing: two `Store`s (two pools) on one database, many
//! requests in flight at once from each. Each test says what must hold however they interleave.

use std::collections::HashSet;

use futures_util::future::join_all;
use phone_agent::store::call_events::EventKind;
use phone_agent::store::calls::{Direction, NewCall};
use phone_agent::store::idempotency::IdempotencyClaim;
use phone_agent::store::status::CallStatus;
use phone_agent::store::Store;
use serde_json::json;

use super::{open, postgres};

/// The time every due call below is due by.
const NOW: i64 = 1_000_000;

fn call(status: CallStatus, call_sid: Option<String>, scheduled_at: Option<i64>) -> NewCall {
    NewCall {
        call_sid,
        direction: Direction::Outbound,
        from: "+14155550199".into(),
        to: "+14155550100".into(),
        status,
        agent: None,
        metadata: None,
        scheduled_at,
        timezone: None,
        machine_detection: None,
        webhook_url: None,
    }
}

/// Two stores on one fresh PostgreSQL database (kept alive by the returned server).
async fn two_servers() -> Option<(Store, Store, impl Drop)> {
    let postgres = postgres()?;
    let url = postgres.url();
    Some((open(&url).await, open(&url).await, postgres))
}

#[actix_rt::test]
async fn two_servers_claim_each_due_call_exactly_once() {
    let Some((a, b, _postgres)) = two_servers().await else {
        return;
    };
    let mut due = HashSet::new();
    for n in 0..240 {
        let scheduled = call(CallStatus::Scheduled, None, Some(NOW - n));
        due.insert(a.insert_call(&scheduled, 0).await.unwrap().id);
    }
    let later = call(CallStatus::Scheduled, None, Some(NOW + 1));
    a.insert_call(&later, 0).await.unwrap();

    // Four schedulers per server claim small batches, all eight claims in flight at once, round
    // after round until a round finds nothing left. Each round takes at most 40 of the 240, so
    // both servers race in every round.
    let claim = |store: Store, instance: &'static str| async move {
        let batch = store.claim_due(NOW, instance, 5).await.unwrap();
        batch.into_iter().map(move |call| (instance, call.id))
    };
    let mut claims = Vec::new();
    loop {
        let round =
            (0..4).flat_map(|_| [claim(a.clone(), "server-a"), claim(b.clone(), "server-b")]);
        let claimed: Vec<_> = join_all(round).await.into_iter().flatten().collect();
        if claimed.is_empty() {
            break;
        }
        claims.extend(claimed);
    }

    let ids: HashSet<_> = claims.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(claims.len(), due.len(), "no call claimed twice");
    assert_eq!(ids, due, "every due call claimed, nothing else");
    // Which server wins each race depends on scheduling (under load one may win them all): the
    // guarantee tested is that no call is claimed twice and none is lost.
}

#[actix_rt::test]
async fn event_numbers_run_without_gaps_when_two_servers_append_at_once() {
    let Some((a, b, _postgres)) = two_servers().await else {
        return;
    };
    let id = a
        .insert_call(&call(CallStatus::Queued, Some("CA1".into()), None), 0)
        .await
        .unwrap()
        .id;
    let appender = |store: Store, id: String| async move {
        let mut seqs = Vec::new();
        for n in 0..25 {
            let data = json!({ "n": n });
            seqs.extend(
                store
                    .append_event(&id, EventKind::End, &data, n)
                    .await
                    .unwrap()
                    .map(|event| event.seq),
            );
        }
        seqs
    };
    let workers = (0..4).flat_map(|_| {
        [
            appender(a.clone(), id.clone()),
            appender(b.clone(), id.clone()),
        ]
    });
    let mut returned: Vec<i64> = join_all(workers).await.into_iter().flatten().collect();
    returned.sort_unstable();
    assert_eq!(
        returned,
        (2..=201).collect::<Vec<_>>(),
        "1 is the first status"
    );
    let logged: Vec<i64> = b
        .events_after(&id, 0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(logged, (1..=201).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn racing_status_callbacks_end_at_the_latest_and_are_logged_forwards() {
    let Some((a, b, _postgres)) = two_servers().await else {
        return;
    };
    use CallStatus::{Busy, Completed, InProgress, Ringing};
    let mut calls = Vec::new();
    for n in 0..20 {
        let placed = call(CallStatus::Queued, Some(format!("CA{n}")), None);
        calls.push(a.insert_call(&placed, 0).await.unwrap().id);
    }
    // Each server gets the callbacks of every call in another order, all in flight at once.
    let orders = [
        [InProgress, Ringing, Completed, Busy],
        [Completed, Ringing, InProgress, Busy],
    ];
    let mut updates = Vec::new();
    for (n, id) in calls.iter().enumerate() {
        for (store, order) in [(&a, orders[n % 2]), (&b, orders[(n + 1) % 2])] {
            for status in order {
                let (store, id) = (store.clone(), id.clone());
                updates
                    .push(async move { store.apply_status(&id, status, None, 1).await.unwrap() });
            }
        }
    }
    join_all(updates).await;

    for id in &calls {
        let call = b.call(id).await.unwrap().unwrap();
        assert!(
            [Completed, Busy].contains(&call.status),
            "{id} ended at {:?}",
            call.status
        );
        let ranks: Vec<i64> = b
            .events_after(id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|event| {
                let status = event.data.as_ref().unwrap()["status"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                CallStatus::parse(&status).unwrap().rank()
            })
            .collect();
        assert!(
            ranks.windows(2).all(|pair| pair[0] < pair[1]),
            "{id}: the log only moves forwards: {ranks:?}"
        );
        assert_eq!(ranks.last(), Some(&Completed.rank()));
    }
}

#[actix_rt::test]
async fn of_two_identical_requests_one_claims_the_key_and_one_webhook_records_the_call() {
    let Some((a, b, _postgres)) = two_servers().await else {
        return;
    };
    let keys: Vec<String> = (0..50).map(|n| format!("key-{n}")).collect();
    let claims = keys.iter().flat_map(|key| {
        [a.clone(), b.clone()].map(|store| {
            let key = key.clone();
            async move {
                store
                    .claim_idempotency_key("tok_1", &key, NOW)
                    .await
                    .unwrap()
            }
        })
    });
    let claims = join_all(claims).await;
    for (key, pair) in keys.iter().zip(claims.chunks(2)) {
        let won = pair
            .iter()
            .filter(|c| **c == IdempotencyClaim::Claimed)
            .count();
        let waiting = pair
            .iter()
            .filter(|c| **c == IdempotencyClaim::Pending)
            .count();
        assert_eq!((won, waiting), (1, 1), "{key}: {pair:?}");
    }

    let webhooks = (0..20).flat_map(|n| {
        [a.clone(), b.clone()].map(|store| async move {
            let inbound = call(CallStatus::Ringing, Some(format!("CA{n}")), None);
            (n, store.insert_call(&inbound, NOW).await.unwrap().id)
        })
    });
    let recorded = join_all(webhooks).await;
    for pair in recorded.chunks(2) {
        assert_eq!(pair[0], pair[1], "both servers got the one call's id");
        assert_eq!(a.events_after(&pair[0].1, 0, 10).await.unwrap().len(), 1);
    }
}

/// Leases on a fake clock: the instance that keeps renewing keeps its call; the other one's call
/// is ended as interrupted once its lease has run out, by whichever instance looks.
#[actix_rt::test]
async fn a_renewed_lease_keeps_its_call_and_a_lapsed_one_is_ended_as_interrupted() {
    use std::sync::Arc;
    use std::time::Duration;

    use phone_agent::calls::feed::CallFeed;
    use phone_agent::calls::ownership::CallOwnership;
    use phone_agent::calls::records::CallRecords;
    use phone_agent::store::calls::{StreamClaim, INTERRUPTED};
    use phone_agent_actors::ids::CallSid;

    const LEASE: Duration = Duration::from_secs(30);
    let Some((a, b, _postgres)) = two_servers().await else {
        return;
    };
    let ownership = |store: &Store| {
        let records = CallRecords::new(store.clone(), Arc::new(CallFeed::default()));
        CallOwnership::new(records, store.instance().to_owned(), LEASE)
    };
    let (live, dead) = (ownership(&a), ownership(&b));
    let sid = |n: u32| CallSid::parse(&format!("CA{n:032x}")).unwrap();
    for n in [1, 2] {
        let new = call(
            CallStatus::InProgress,
            Some(sid(n).as_str().to_owned()),
            None,
        );
        a.insert_call(&new, 0).await.unwrap();
    }
    assert_eq!(live.claim(&sid(1), 0).await.unwrap(), StreamClaim::Claimed);
    assert_eq!(dead.claim(&sid(2), 0).await.unwrap(), StreamClaim::Claimed);
    assert_eq!(dead.claim(&sid(1), 0).await.unwrap(), StreamClaim::Taken);

    // The live instance renews every third of the lease; the other one never again (killed).
    for at in [10_000, 20_000, 30_000] {
        assert!(
            live.upkeep(at).await.unwrap().is_empty(),
            "nothing lapsed at {at}"
        );
    }
    let ended = live.upkeep(40_000).await.unwrap();
    let second = a.call(sid(2).as_str()).await.unwrap().unwrap();
    assert_eq!(ended, [second.id.as_str()]);
    assert_eq!(second.end_reason.as_deref(), Some(INTERRUPTED));
    assert!(a
        .call(sid(1).as_str())
        .await
        .unwrap()
        .unwrap()
        .end_reason
        .is_none());
    // Ended once: the instance that looks next finds nothing to end.
    assert!(dead.upkeep(40_000).await.unwrap().is_empty());
}
