//! Every backend behind the same checks: the filesystem in a temporary directory, and S3
//! against a real S3-compatible server (moto's, started by deploy/test.sh; its endpoint
//! comes in `SKIFF_TEST_S3_ENDPOINT`).

use bytes::Bytes;
use skiff_store::{
    BlobStore, DigestAlgorithm, FsBlobStore, FsRecordStore, RecordStore, S3BlobStore, StoreError, digest,
};

/// Round trips, ranges, listing, deleting, and a mismatched digest that stores nothing.
async fn blobs_round_trip_and_mismatches_store_nothing(store: &dyn BlobStore) {
    let digest = digest::sha256(b"hello");
    store.put_bytes(&digest, Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), Some(5));
    assert_eq!(store.read(&digest).await.unwrap().unwrap(), "hello");
    assert_eq!(store.list().await.unwrap().into_iter().map(|(d, _)| d).collect::<Vec<_>>(), vec![digest.clone()]);

    let wrong = digest::sha256(b"other");
    let err = store.put_bytes(&wrong, Bytes::from_static(b"hello")).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert_eq!(store.size(&wrong).await.unwrap(), None);
    assert!(store.read(&wrong).await.unwrap().is_none());

    let mut part = String::new();
    let range = store.open_range(&digest, 1, 4).await.unwrap().unwrap();
    assert_eq!(range.size, 3);
    tokio::io::AsyncReadExt::read_to_string(&mut tokio_util::io::StreamReader::new(range.body), &mut part)
        .await
        .unwrap();
    assert_eq!(part, "ell");
    let whole = store.open(&digest).await.unwrap().unwrap();
    assert_eq!(whole.size, 5);
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tokio_util::io::StreamReader::new(whole.body), &mut text)
        .await
        .unwrap();
    assert_eq!(text, "hello");

    store.delete(&digest).await.unwrap();
    store.delete(&digest).await.unwrap();
    assert!(store.open(&digest).await.unwrap().is_none());
    assert!(store.list().await.unwrap().is_empty());
}

/// Two writers of one digest both succeed.
async fn concurrent_writers_of_one_digest_both_succeed(store: &dyn BlobStore) {
    let body = Bytes::from(vec![7u8; 1 << 20]);
    let digest = digest::sha256(&body);
    let (a, b) = tokio::join!(store.put_bytes(&digest, body.clone()), store.put_bytes(&digest, body.clone()));
    a.unwrap();
    b.unwrap();
    assert_eq!(store.read(&digest).await.unwrap().unwrap(), body);
}

/// A staged blob is verified when committed, also after it was cut back; a large one
/// (several upload parts on S3, several batches and background syncs on disk) arrives
/// whole, also when what followed it was cut off.
async fn staged_blobs_are_verified_on_commit_even_after_a_cut(store: &dyn BlobStore) {
    let mut staged = store.stage(DigestAlgorithm::Sha256).await.unwrap();
    staged.write(Bytes::from_static(b"hello, ")).await.unwrap();
    staged.write(Bytes::from_static(b"broken")).await.unwrap();
    staged.truncate(7).await.unwrap();
    staged.write(Bytes::from_static(b"world")).await.unwrap();
    assert_eq!(staged.size(), 12);
    let digest = digest::sha256(b"hello, world");
    store.commit(staged, &digest).await.unwrap();
    assert_eq!(store.read(&digest).await.unwrap().unwrap(), "hello, world");

    let mut wrong = store.stage(DigestAlgorithm::Sha256).await.unwrap();
    wrong.write(Bytes::from_static(b"abc")).await.unwrap();
    let err = store.commit(wrong, &digest::sha256(b"xyz")).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert_eq!(store.size(&digest::sha256(b"xyz")).await.unwrap(), None);

    let large: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut staged = store.stage(DigestAlgorithm::Sha512).await.unwrap();
    for chunk in large.chunks(1 << 20) {
        staged.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    staged.write(Bytes::from(vec![7u8; 3 << 20])).await.unwrap();
    staged.truncate(large.len() as u64).await.unwrap();
    let digest = digest::of_bytes(DigestAlgorithm::Sha512, &large);
    store.commit(staged, &digest).await.unwrap();
    assert_eq!(store.size(&digest).await.unwrap(), Some(large.len() as u64));
    let range = store.open_range(&digest, (20 << 20) - 3, (20 << 20) + 3).await.unwrap().unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tokio_util::io::StreamReader::new(range.body), &mut bytes).await.unwrap();
    assert_eq!(bytes, large[(20 << 20) - 3..(20 << 20) + 3]);
}

/// Records: written, replaced, read, listed under a prefix (and only that prefix),
/// deleted; names that would leave the root are refused.
async fn records_round_trip_and_list_by_prefix(records: &dyn RecordStore) {
    assert_eq!(records.get("shop/web/_tags/v1").await.unwrap(), None);
    records.put("shop/web/_tags/v1", Bytes::from_static(b"sha256:1")).await.unwrap();
    records.put("shop/web/_tags/v1", Bytes::from_static(b"sha256:2")).await.unwrap();
    records.put("shop/web/_layers/sha256/ab", Bytes::new()).await.unwrap();
    records.put("shop/webshop/_tags/v9", Bytes::from_static(b"x")).await.unwrap();
    records.put("shop/_tags/latest", Bytes::from_static(b"y")).await.unwrap();
    assert_eq!(records.get("shop/web/_tags/v1").await.unwrap().unwrap(), Bytes::from_static(b"sha256:2"));
    assert_eq!(records.get("shop/web/_layers/sha256/ab").await.unwrap().unwrap(), Bytes::new());

    let names = |listed: Vec<(String, std::time::SystemTime)>| {
        let mut names: Vec<String> = listed.into_iter().map(|(name, _)| name).collect();
        names.sort();
        names
    };
    assert_eq!(names(records.list("shop/web").await.unwrap()), ["_layers/sha256/ab", "_tags/v1"]);
    assert_eq!(names(records.list("shop/web/_tags").await.unwrap()), ["v1"]);
    assert!(records.list("shop/nothing").await.unwrap().is_empty());
    let everything = names(records.list("").await.unwrap());
    for name in ["shop/_tags/latest", "shop/web/_tags/v1", "shop/webshop/_tags/v9"] {
        assert!(everything.iter().any(|n| n == name), "{name} in {everything:?}");
    }

    assert!(records.delete("shop/web/_tags/v1").await.unwrap());
    assert!(!records.delete("shop/web/_tags/v1").await.unwrap(), "a second delete finds nothing");
    assert_eq!(records.get("shop/web/_tags/v1").await.unwrap(), None);
    assert!(records.delete("shop/web/_layers/sha256/ab").await.unwrap());
    assert!(records.list("shop/web").await.unwrap().is_empty(), "nothing is left under a prefix emptied");
    assert_eq!(records.get("shop/webshop/_tags/v9").await.unwrap().unwrap(), Bytes::from_static(b"x"));
    for bad in ["../escape", "shop/../../etc/passwd", "/absolute", "shop//web", "shop/.tmp-1"] {
        assert!(records.put(bad, Bytes::from_static(b"no")).await.is_err(), "{bad}");
        assert!(records.get(bad).await.is_err(), "{bad}");
    }
}

async fn every_check(store: &dyn BlobStore) {
    blobs_round_trip_and_mismatches_store_nothing(store).await;
    concurrent_writers_of_one_digest_both_succeed(store).await;
    staged_blobs_are_verified_on_commit_even_after_a_cut(store).await;
}

#[tokio::test]
async fn the_filesystem_backend_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    every_check(&FsBlobStore::open(dir.path()).await.unwrap()).await;
    records_round_trip_and_list_by_prefix(&FsRecordStore::new(dir.path().join("records"))).await;
    let left: Vec<_> =
        std::fs::read_dir(dir.path().join("records/shop")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "directories emptied by deletes go: {left:?}");
}

#[tokio::test]
#[ignore = "needs an S3 server (deploy/test.sh starts one)"]
async fn the_s3_backend_passes_every_check_against_a_real_s3_server() {
    let endpoint = std::env::var("SKIFF_TEST_S3_ENDPOINT").expect(
        "this test needs an S3 server: run deploy/test.sh, which installs and starts one (moto), \
         or set SKIFF_TEST_S3_ENDPOINT=http://127.0.0.1:PORT",
    );
    let bucket = format!("skiff-test-{:08x}", rand::random::<u32>());
    let created =
        reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("the S3 server answers");
    assert!(created.status().is_success(), "creating bucket {bucket}: {}", created.status());
    let staging = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}?endpoint={endpoint}&access_key_id=skiff&secret_access_key=skiff-secret");
    let store = S3BlobStore::open(&url, staging.path()).await.unwrap();
    every_check(&store).await;
    records_round_trip_and_list_by_prefix(&store.records("records")).await;
    let missing = format!("s3://no-such-bucket-{:08x}?endpoint={endpoint}", rand::random::<u32>());
    assert!(S3BlobStore::open(&missing, staging.path()).await.is_err(), "a bucket that is not there fails at start");
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0, "nothing staged is left behind");
}
