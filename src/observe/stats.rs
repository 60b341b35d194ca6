//! Snapshots of the server's state for `/stats` and `/metrics`: plain values, made by the
//! parts that own the state (the memory budget, the rooms, the Redis link) and read by the
//! parts that report it, so that neither depends on the other.

use clap::ValueEnum;

use crate::config::Mode;

/// What `/stats` and `/metrics` show of the memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// The limit, in bytes.
    pub limit: usize,
    /// Bytes charged to connections now.
    pub held: usize,
    /// Connections paused until there is room.
    pub paused: usize,
}

impl BudgetUse {
    /// A 1 GiB budget with nothing held, for the unit tests.
    #[cfg(test)]
    pub(crate) const IDLE_GIB: BudgetUse = BudgetUse {
        limit: 1 << 30,
        held: 0,
        paused: 0,
    };
}

/// The nodes sharing the rooms, and each room's members across all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Nodes that published their room sizes within the last few seconds.
    pub nodes: usize,
    /// Members per room, summed over the nodes.
    pub rooms: Vec<(String, usize)>,
}

/// Everything `/stats` reports, as read at one moment.
pub(crate) struct Stats {
    /// The mode the server runs in.
    pub mode: Mode,
    /// Connection slots taken: WebSocket clients plus HTTP requests being answered.
    pub connections: usize,
    /// Members of each broadcast room on this node.
    pub rooms: Vec<(String, usize)>,
    /// The memory budget's limit and use.
    pub memory: BudgetUse,
    /// With `--redis`: whether Redis is reachable, and what the nodes published.
    pub cluster: Option<(bool, ClusterView)>,
    /// Whether the asker may see room names (`--metrics-allow`); others get counts only.
    pub show_rooms: bool,
}

/// Rooms listed by name at most, the ones with the most members: a client that opens
/// thousands of rooms cannot make `/stats` large.
pub(crate) const LISTED_ROOMS: usize = 100;

impl Stats {
    /// `{"mode":…,"connections":N,"rooms":{"/lobby":2,...},"memory":{...}}` and, with
    /// `--redis`, `cluster`: one line of JSON, newline-terminated, names escaped by
    /// serde_json.
    pub(crate) fn to_json(&self) -> String {
        let mode = self
            .mode
            .to_possible_value()
            .map(|value| value.get_name().to_owned());
        let memory = serde_json::json!({
            "limit_bytes": self.memory.limit,
            "held_bytes": self.memory.held,
            "paused_clients": self.memory.paused,
        });
        let mut body = serde_json::json!({
            "mode": mode,
            "connections": self.connections,
            "rooms": self.room_object(&self.rooms),
            "room_count": self.rooms.len(),
            "memory": memory,
        });
        if let Some((connected, view)) = &self.cluster {
            body["cluster"] = serde_json::json!({
                "redis_connected": connected,
                "nodes": view.nodes,
                "rooms": self.room_object(&view.rooms),
                "room_count": view.rooms.len(),
            });
        }
        let mut body = body.to_string();
        body.push('\n');
        body
    }
}

impl Stats {
    /// The [`LISTED_ROOMS`] rooms with the most members, by name, for an asker who may see
    /// names; nothing for anyone else.
    fn room_object(&self, rooms: &[(String, usize)]) -> serde_json::Map<String, serde_json::Value> {
        if !self.show_rooms {
            return serde_json::Map::new();
        }
        let mut largest: Vec<&(String, usize)> = rooms.iter().collect();
        largest.sort_by(|(a_name, a_size), (b_name, b_size)| {
            b_size.cmp(a_size).then_with(|| a_name.cmp(b_name))
        });
        largest
            .into_iter()
            .take(LISTED_ROOMS)
            .map(|(name, size)| (name.clone(), (*size).into()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_BUDGET: BudgetUse = BudgetUse::IDLE_GIB;

    fn stats(mode: Mode, connections: usize, rooms: Vec<(String, usize)>) -> String {
        Stats {
            mode,
            connections,
            rooms,
            memory: IDLE_BUDGET,
            cluster: None,
            show_rooms: true,
        }
        .to_json()
    }

    #[test]
    fn stats_escape_room_names_as_json() {
        let rooms = vec![
            ("/plain".to_owned(), 2),
            ("/quo\"te\\back".to_owned(), 1),
            ("/ctl\u{1}\n".to_owned(), 3),
            ("/ünï".to_owned(), 4),
        ];
        let body = stats(Mode::Broadcast, 7, rooms.clone());
        assert!(body.ends_with('\n'));
        assert_eq!(body.lines().count(), 1, "one line: {body}");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["connections"], 7);
        assert_eq!(parsed["mode"], "broadcast");
        for (name, size) in rooms {
            assert_eq!(parsed["rooms"][name.as_str()], size, "{name:?}");
        }
    }

    #[test]
    fn stats_without_rooms_is_an_empty_object() {
        let parsed: serde_json::Value =
            serde_json::from_str(&stats(Mode::Echo, 0, Vec::new())).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "mode": "echo",
                "connections": 0,
                "rooms": {},
                "room_count": 0,
                "memory": { "limit_bytes": 1 << 30, "held_bytes": 0, "paused_clients": 0 },
            })
        );
    }

    #[test]
    fn only_the_largest_rooms_are_listed_and_only_to_those_allowed() {
        let rooms: Vec<(String, usize)> = (0..150).map(|n| (format!("/r{n:03}"), n)).collect();
        let listed: serde_json::Value =
            serde_json::from_str(&stats(Mode::Broadcast, 1, rooms.clone())).unwrap();
        let names = listed["rooms"].as_object().unwrap();
        assert_eq!(names.len(), LISTED_ROOMS);
        assert_eq!(listed["room_count"], 150);
        assert!(names.contains_key("/r149") && !names.contains_key("/r049"));
        let counted = Stats {
            mode: Mode::Broadcast,
            connections: 1,
            rooms,
            memory: IDLE_BUDGET,
            cluster: None,
            show_rooms: false,
        };
        let counted: serde_json::Value = serde_json::from_str(&counted.to_json()).unwrap();
        assert_eq!(counted["rooms"], serde_json::json!({}));
        assert_eq!(counted["room_count"], 150);
    }
}
