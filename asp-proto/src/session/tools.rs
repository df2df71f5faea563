//! Tool sets (ours and the peer's) and changing them with TOOL_DEF (SPEC.md §6.5).

use super::{Event, SendError, Session};
use crate::{ErrorCode, Frame, ToolDef, ToolOp, ToolSpec};

/// Tools by name, in name order.
///
/// A sorted `Vec`, not a `BTreeMap`: every connection holds two sets, and a
/// B-tree allocates a whole node (~2 KB here) for even one tool, which
/// showed up as a sixth of an idle connection's memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSet {
    tools: Vec<ToolSpec>,
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
                for tool in tools.into_iter().filter(|t| !t.name.is_empty()) {
                    match self.position(&tool.name) {
                        Ok(i) => self.tools[i] = tool,
                        Err(i) => self.tools.insert(i, tool),
                    }
                }
            }
            ToolOp::Remove => {
                for tool in tools {
                    if let Ok(i) = self.position(&tool.name) {
                        self.tools.remove(i);
                    }
                }
            }
            ToolOp::Replace => *self = ToolSet::new(tools),
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.tools.binary_search_by(|t| t.name.as_str().cmp(name))
    }

    /// The tool of that name.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.position(name).ok().map(|i| &self.tools[i])
    }

    /// True when a tool of that name is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
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
        self.tools.iter()
    }
}

// ------------------------------------------------- tool pushes (SPEC.md §6.5)

impl Session {
    pub(super) fn on_tool_def(&mut self, def: ToolDef) {
        let mut next = self.peer_tools.clone();
        next.apply(def.op, def.tools);
        if next.len() > self.config.max_peer_tools {
            let max = self.config.max_peer_tools;
            return self.protocol_error(ErrorCode::TOO_MANY_TOOLS, format!("the peer announced more than {max} tools"));
        }
        self.peer_tools = next;
        self.events.push_back(Event::PeerToolsChanged);
    }

    /// Changes our tool set and tells the peer (TOOL_DEF).
    pub fn push_tools(&mut self, op: ToolOp, tools: Vec<ToolSpec>) -> Result<(), SendError> {
        self.accepting_commands()?;
        let frame = Frame::ToolDef(ToolDef { op, tools });
        self.send(&frame)?;
        if let Frame::ToolDef(def) = frame {
            self.local_tools.apply(def.op, def.tools);
        }
        Ok(())
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
