//! A peer's (or our own) tool set, changed by TOOL_DEF (SPEC.md §6.5).

use std::collections::BTreeMap;

use crate::{ToolOp, ToolSpec};

/// Tools by name, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSet {
    tools: BTreeMap<String, ToolSpec>,
}

impl ToolSet {
    /// A set holding `tools` (a later tool replaces an earlier one of the
    /// same name).
    pub fn new(tools: impl IntoIterator<Item = ToolSpec>) -> Self {
        let mut set = ToolSet::default();
        set.apply(ToolOp::Add, tools);
        set
    }

    /// Applies one TOOL_DEF operation.
    pub fn apply(&mut self, op: ToolOp, tools: impl IntoIterator<Item = ToolSpec>) {
        match op {
            // A nameless tool cannot be announced or invoked.
            ToolOp::Add => {
                self.tools.extend(tools.into_iter().filter(|t| !t.name.is_empty()).map(|t| (t.name.clone(), t)))
            }
            ToolOp::Remove => {
                for t in tools {
                    self.tools.remove(&t.name);
                }
            }
            ToolOp::Replace => *self = ToolSet::new(tools),
        }
    }

    /// The tool of that name.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name)
    }

    /// True when a tool of that name is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// The number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// True when there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tools, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &ToolSet) -> Vec<&str> {
        set.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn add_remove_replace() {
        let mut set = ToolSet::new([ToolSpec::named("b"), ToolSpec::named("a")]);
        assert_eq!(names(&set), ["a", "b"]);
        set.apply(ToolOp::Add, [ToolSpec { desc: Some("new".into()), ..ToolSpec::named("a") }]);
        assert_eq!(set.get("a").unwrap().desc.as_deref(), Some("new"));
        set.apply(ToolOp::Remove, [ToolSpec::named("b"), ToolSpec::named("zzz")]);
        assert_eq!(names(&set), ["a"]);
        set.apply(ToolOp::Replace, []);
        assert!(set.is_empty());
    }
}
