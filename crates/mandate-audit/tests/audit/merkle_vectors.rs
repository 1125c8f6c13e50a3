//! Every inclusion and consistency vector of transparency-dev/merkle (copied into
//! `tests/data/merkle/`, with its LICENSE and README): accept each `wantErr: false`,
//! reject each `wantErr: true`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mandate_audit::merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
};
use serde::Deserialize;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle")
}

/// Every `.json` file under `dir`, at any depth, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

fn proof(p: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    p.iter().flatten().map(|s| b64(s)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// The eight RFC 6962 test leaves the vectors' happy paths are built from.
fn rfc6962_leaves() -> Vec<Hash> {
    let inputs: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    inputs.iter().map(|d| leaf_hash(d)).collect()
}

#[test]
fn inclusion_vectors() {
    let files = json_files(&data_dir().join("inclusion"));
    assert_eq!(
        files.len(),
        98,
        "every inclusion vector, additional/*/* included"
    );
    let leaves = rfc6962_leaves();
    let mut happy = 0;
    for path in &files {
        let v: Inclusion = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let proof = proof(&v.proof);
        let got = verify_inclusion(
            &b64(&v.leaf_hash),
            v.leaf_idx,
            v.tree_size,
            &proof,
            &b64(&v.root),
        );
        assert_eq!(
            got.is_err(),
            v.want_err,
            "{} ({}): {got:?}",
            path.display(),
            v.desc
        );
        if v.desc == "happy path" {
            // The generator agrees with the reference proof.
            let tree = &leaves[..v.tree_size as usize];
            assert_eq!(root(tree).to_vec(), b64(&v.root), "{}", path.display());
            let made = inclusion_proof(tree, v.leaf_idx).unwrap();
            assert_eq!(made.iter().map(|h| h.to_vec()).collect::<Vec<_>>(), proof);
            happy += 1;
        }
    }
    assert_eq!(happy, 5);
}

#[test]
fn consistency_vectors() {
    let files = json_files(&data_dir().join("consistency"));
    assert_eq!(files.len(), 98, "every consistency vector");
    let leaves = rfc6962_leaves();
    let mut happy = 0;
    for path in &files {
        let v: Consistency = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let proof = proof(&v.proof);
        let got = verify_consistency(v.size1, v.size2, &b64(&v.root1), &b64(&v.root2), &proof);
        assert_eq!(
            got.is_err(),
            v.want_err,
            "{} ({}): {got:?}",
            path.display(),
            v.desc
        );
        if v.desc == "happy path" {
            let made = consistency_proof(&leaves, v.size1, v.size2).unwrap();
            assert_eq!(made.iter().map(|h| h.to_vec()).collect::<Vec<_>>(), proof);
            assert_eq!(root(&leaves[..v.size2 as usize]).to_vec(), b64(&v.root2));
            happy += 1;
        }
    }
    assert_eq!(happy, 5);
}

#[test]
fn vectors_keep_their_license() {
    for f in ["LICENSE", "README.md"] {
        assert!(
            data_dir().join(f).is_file(),
            "{f} must stay beside the vectors"
        );
    }
}
