//! JSON merge patch (RFC 7396): how every `PATCH` of the API changes what is stored. A member
//! the patch names replaces the stored one, `null` removes it, objects merge member by
//! member, and whatever the patch does not name is kept.

use serde_json::{Map, Value};

/// Apply `patch` to `target` as RFC 7396 section 2 says.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(members) = target {
        for (name, change) in changes {
            if change.is_null() {
                members.remove(name);
            } else {
                merge_patch(members.entry(name.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn patched(target: Value, patch: Value) -> Value {
        let mut t = target;
        merge_patch(&mut t, &patch);
        t
    }

    /// The examples of RFC 7396 appendix A.
    #[test]
    fn the_rfc_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                patched(target.clone(), patch.clone()),
                want,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn a_partial_patch_keeps_what_it_does_not_name() {
        let stored = json!({"queue": "8", "status": "1", "priority": "2"});
        assert_eq!(
            patched(stored, json!({"priority": "3"})),
            json!({"queue": "8", "status": "1", "priority": "3"})
        );
    }

    proptest! {
        /// Applying the same patch twice changes nothing more (patches are idempotent).
        #[test]
        fn patches_are_idempotent(
            target in proptest::collection::btree_map("[a-c]", "[x-z]", 0..4),
            patch in proptest::collection::btree_map("[a-d]", proptest::option::of("[x-z]"), 0..4),
        ) {
            let target = json!(target);
            let patch = json!(patch);
            let once = patched(target, patch.clone());
            prop_assert_eq!(patched(once.clone(), patch), once);
        }
    }
}
