//! Tool sets (ours and the peer's) and changing them with TOOL_DEF (SPEC.md §6.5).

use std::sync::Arc;

use super::{Event, SendError, Session};
use crate::{ErrorCode, Frame, ToolDef, ToolOp, ToolSpec};

/// Tools by name, in name order.
///
/// A sorted `Vec`, not a `BTreeMap`: every connection holds two sets, and a
/// B-tree allocates a whole node (~2 KB here) for even one tool, which
/// showed up as a sixth of an idle connection's memory.
///
/// **Cloning shares the tools** (copy on write): a server hands every
/// connection a clone of one set, so ten thousand connections hold one copy
/// of its names and schemas between them until one connection's set
/// changes. (One copy each was 0.6 KB of every idle connection for two
/// bare tools, and grows with the schemas.)
///
/// Changes cost O(n log n) in the tools involved, never a shift per tool:
/// an adversarial TOOL_DEF (tens of thousands of tools in descending
/// order) must not cost quadratic time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSet {
    tools: Arc<Vec<ToolSpec>>,
    /// [`tool_size`] summed over `tools`.
    bytes: usize,
}

/// A tool's size for the session's memory bound: its strings and the
/// strings, binaries and scalars of its schemas (about its MsgPack size).
pub(super) fn tool_size(tool: &ToolSpec) -> usize {
    fn value_size(v: &crate::Value) -> usize {
        use crate::Value;
        match v {
            Value::String(s) => 5 + s.as_bytes().len(),
            Value::Binary(b) => 5 + b.len(),
            Value::Array(items) => 5 + items.iter().map(value_size).sum::<usize>(),
            Value::Map(pairs) => 5 + pairs.iter().map(|(k, v)| value_size(k) + value_size(v)).sum::<usize>(),
            Value::Ext(_, b) => 6 + b.len(),
            _ => 9,
        }
    }
    tool.name.len()
        + tool.desc.as_ref().map_or(0, String::len)
        + value_size(&tool.input)
        + value_size(&tool.output)
        + value_size(&tool.meta)
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
        let set = Arc::make_mut(&mut self.tools);
        match op {
            // A nameless tool cannot be announced or invoked.
            ToolOp::Add => {
                let incoming: Vec<ToolSpec> = tools.into_iter().filter(|t| !t.name.is_empty()).collect();
                if incoming.len() <= 4 {
                    for tool in incoming {
                        match set.binary_search_by(|t| t.name.as_str().cmp(&tool.name)) {
                            Ok(i) => set[i] = tool,
                            Err(i) => set.insert(i, tool),
                        }
                    }
                } else {
                    // Old tools, then the new ones in order; a stable sort
                    // keeps that order among equal names, and the last of
                    // each name wins.
                    set.extend(incoming);
                    set.sort_by(|a, b| a.name.cmp(&b.name));
                    set.reverse();
                    set.dedup_by(|later, kept| later.name == kept.name);
                    set.reverse();
                }
            }
            ToolOp::Remove => {
                let mut names: Vec<String> = tools.into_iter().map(|t| t.name).collect();
                names.sort_unstable();
                set.retain(|t| names.binary_search(&t.name).is_err());
            }
            ToolOp::Replace => {
                set.clear();
                self.apply(ToolOp::Add, tools);
            }
        }
        self.bytes = self.tools.iter().map(tool_size).sum();
    }

    /// True when `self` and `other` share one copy of their tools (a clone
    /// neither has changed since).
    pub fn shares_with(&self, other: &ToolSet) -> bool {
        Arc::ptr_eq(&self.tools, &other.tools)
    }

    /// The set's size for memory bounds: its names, descriptions and
    /// schemas, about their MsgPack size.
    pub fn bytes(&self) -> usize {
        self.bytes
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

impl From<Vec<ToolSpec>> for ToolSet {
    fn from(tools: Vec<ToolSpec>) -> Self {
        ToolSet::new(tools)
    }
}

impl FromIterator<ToolSpec> for ToolSet {
    fn from_iter<I: IntoIterator<Item = ToolSpec>>(tools: I) -> Self {
        ToolSet::new(tools)
    }
}

// ------------------------------------------------- tool pushes (SPEC.md §6.5)

impl Session {
    pub(super) fn on_tool_def(&mut self, def: ToolDef) {
        let mut next = self.peer_tools.clone();
        next.apply(def.op, def.tools);
        if self.peer_tools_fit(&next) {
            self.peer_tools = next;
            self.events.push_back(Event::PeerToolsChanged);
        }
    }

    /// True when `tools` is within the bounds on the peer's tool set (count
    /// and bytes, SPEC.md §6.5, §12), from HELLO or TOOL_DEF alike; past
    /// them the session ends with `TOO_MANY_TOOLS`.
    pub(super) fn peer_tools_fit(&mut self, tools: &ToolSet) -> bool {
        let (max, max_bytes) = (self.config.max_peer_tools, self.config.max_peer_tools_bytes);
        if tools.len() <= max && tools.bytes() <= max_bytes {
            return true;
        }
        let message = format!(
            "the peer announced {} tools of {} bytes; at most {max} tools of {max_bytes} bytes are kept",
            tools.len(),
            tools.bytes()
        );
        self.protocol_error(ErrorCode::TOO_MANY_TOOLS, message);
        false
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

    #[test]
    fn clones_share_until_one_changes() {
        let set = ToolSet::new([ToolSpec::named("a"), ToolSpec::named("b")]);
        let mut copy = set.clone();
        assert!(copy.shares_with(&set), "a clone is one more handle, not a copy");
        copy.apply(ToolOp::Remove, [ToolSpec::named("a")]);
        assert!(!copy.shares_with(&set), "a change copies first");
        assert_eq!(names(&set), ["a", "b"], "the original is untouched");
        assert_eq!(names(&copy), ["b"]);
        assert_eq!(copy.bytes(), ToolSet::new([ToolSpec::named("b")]).bytes());
    }

    #[test]
    fn sessions_made_from_one_config_share_its_tools() {
        let config = super::super::SessionConfig {
            tools: vec![ToolSpec::named("a"), ToolSpec::named("b")].into(),
            ..Default::default()
        };
        let now = web_time::Instant::now();
        let (one, two) = (Session::client(config.clone(), now), Session::client(config.clone(), now));
        assert!(one.local_tools().shares_with(two.local_tools()), "one copy for every connection");
        assert!(one.local_tools().shares_with(&config.tools));
    }
}
