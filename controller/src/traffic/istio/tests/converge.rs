//! The read-render-write loop of `apply`, against an in-memory object that another writer may
//! change between our read and our write.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::TrafficError;
use crate::traffic::istio::READS;
use crate::traffic::istio::client::converge;
use crate::traffic::istio::virtual_service;

/// Another writer, run just before our `n`th write.
type OtherWriter = Box<dyn Fn(&mut Value, usize) + Send + Sync>;

/// An object store that applies JSON patches like the API server (a failed test is a conflict),
/// and lets a test run another writer just before each of our writes.
struct Store {
    object: Mutex<Value>,
    reads: Mutex<usize>,
    writes: Mutex<usize>,
    other_writer: OtherWriter,
}

impl Store {
    fn new(
        object: Value,
        other_writer: impl Fn(&mut Value, usize) + Send + Sync + 'static,
    ) -> Self {
        Self {
            object: Mutex::new(object),
            reads: Mutex::new(0),
            writes: Mutex::new(0),
            other_writer: Box::new(other_writer),
        }
    }

    async fn get(&self) -> Result<Value, TrafficError> {
        *self.reads.lock().expect("lock") += 1;
        Ok(self.object.lock().expect("lock").clone())
    }

    async fn patch(&self, patch: json_patch::Patch) -> Result<Value, TrafficError> {
        let mut object = self.object.lock().expect("lock");
        let mut writes = self.writes.lock().expect("lock");
        (self.other_writer)(&mut object, *writes);
        *writes += 1;
        let mut next = object.clone();
        json_patch::patch(&mut next, &patch)
            .map_err(|_| TrafficError::Conflict("VirtualService shop/web".into()))?;
        *object = next.clone();
        Ok(next)
    }

    fn counts(&self) -> (usize, usize) {
        (
            *self.reads.lock().expect("lock"),
            *self.writes.lock().expect("lock"),
        )
    }
}

async fn run(store: &Store, canary: u8) -> Result<(), TrafficError> {
    let config = config();
    let render = |object: &Value| {
        virtual_service::render(
            &config,
            &config.virtual_services[0],
            object,
            &weights(canary),
        )
    };
    converge(
        "VirtualService shop/web",
        || store.get(),
        |patch| store.patch(patch),
        render,
    )
    .await
}

fn initial() -> Value {
    virtual_service(json!({ "http": [split_route(None, 0, 100)] }))
}

#[tokio::test]
async fn writes_once_and_reads_back() {
    let store = Store::new(initial(), |_, _| {});
    run(&store, 10).await.expect("converges");
    assert_eq!(store.counts(), (1, 1));
    assert_eq!(
        observe_first(&config(), &store.object.lock().expect("lock")).canary_weight,
        Some(10)
    );
}

#[tokio::test]
async fn nothing_is_written_when_the_object_already_matches() {
    let store = Store::new(initial(), |_, _| {});
    run(&store, 0).await.expect("converges");
    assert_eq!(store.counts(), (1, 0));
}

#[tokio::test]
async fn a_concurrent_edit_is_detected_and_retried_after_a_fresh_read() {
    // Before our first write, someone sets the stable weight to 99 (and bumps the version).
    let store = Store::new(initial(), |object, write| {
        if write == 0 {
            object["spec"]["http"][0]["route"][1]["weight"] = json!(99);
            object["spec"]["http"][0]["timeout"] = json!("9s");
        }
    });
    run(&store, 10).await.expect("converges on the second read");
    assert_eq!(store.counts(), (2, 2));
    let object = store.object.lock().expect("lock").clone();
    assert_eq!(
        object["spec"]["http"][0]["timeout"],
        json!("9s"),
        "their edit is kept"
    );
    assert_eq!(weight_at(&object, "http", 0, 1), Some(90));
}

#[tokio::test]
async fn a_writer_that_always_races_us_gives_a_conflict_after_bounded_reads() {
    let store = Store::new(initial(), |object, write| {
        object["spec"]["http"][0]["route"][1]["weight"] = json!(99 - write);
    });
    let error = run(&store, 10).await.expect_err("never converges");
    assert_eq!(error.category(), "Conflict");
    assert_eq!(store.counts(), (READS, READS));
}

#[tokio::test]
async fn an_invalid_reference_is_returned_without_writing() {
    let store = Store::new(virtual_service(json!({})), |_, _| {});
    let error = run(&store, 10).await.expect_err("no route");
    assert_eq!(error.category(), "InvalidReference");
    assert_eq!(store.counts(), (1, 0));
}

#[tokio::test]
async fn a_patch_rejected_on_an_unchanged_object_is_reported_not_retried() {
    // Like a schema or webhook rejection: 422, and the object stays as it was.
    let store = Store::new(initial(), |_, _| {});
    let config = config();
    let render = |object: &Value| {
        virtual_service::render(&config, &config.virtual_services[0], object, &weights(10))
    };
    let reject =
        |_| async { Err::<Value, _>(TrafficError::Conflict("VirtualService shop/web".into())) };
    let error = converge("VirtualService shop/web", || store.get(), reject, render)
        .await
        .expect_err("rejected");
    assert_eq!(error.category(), "InvalidReference");
    assert!(error.to_string().contains("rejects the patch"), "{error}");
    assert_eq!(store.counts(), (2, 0));
}
