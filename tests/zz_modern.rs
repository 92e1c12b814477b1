mod support;
#[test]
#[ignore]
fn keep() {
    let s = support::scenario_modern().unwrap();
    let _ = std::fs::remove_dir_all("/work/golden/root-modern");
    let st = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&s.root)
        .arg("/work/golden/root-modern")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        "/work/golden/modern-df.json",
        serde_json::to_vec_pretty(&s.system_df).unwrap(),
    )
    .unwrap();
    std::fs::write(
        "/work/golden/modern-images.json",
        serde_json::to_vec_pretty(&s.images_json_all).unwrap(),
    )
    .unwrap();
    std::fs::write(
        "/work/golden/modern-containers.json",
        serde_json::to_vec_pretty(&s.containers_json).unwrap(),
    )
    .unwrap();
    std::fs::write(
        "/work/golden/modern-volumes.json",
        serde_json::to_vec_pretty(&s.volumes_json).unwrap(),
    )
    .unwrap();
}
