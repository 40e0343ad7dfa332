#[test]
fn dump() {
    std::fs::write("/tmp/oa/doc.json", serde_json::to_vec_pretty(&retentiond::api::description()).unwrap()).unwrap();
}
