//! The gate's in-memory world (residents, expected visitors, plates the cameras read) and
//! one handler per agent function.
//!
//! Every handler answers with a small JSON object meant to be read by an LLM: `ok` says
//! whether the outcome is positive, `reason` says in one sentence why not and what to do
//! next. A negative business answer ("visitor not expected") is a normal answer, not an
//! HTTP error: voice-ua hands non-2xx replies to the LLM as "the function is unavailable".
//!
//! The backend enforces the main rule itself instead of trusting the prompt: `open_gate`
//! only opens for a visitor who got a positive `check_visitor` or an approving
//! `notify_resident` in the last [`CLEARANCE_TTL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// How long a positive check lets `open_gate` open for that visitor.
pub const CLEARANCE_TTL: Duration = Duration::from_secs(5 * 60);

/// The functions this backend implements, each served at `POST /<name>`.
pub const TOOLS: [&str; 6] = [
    "check_visitor",
    "find_resident",
    "notify_resident",
    "open_gate",
    "get_recent_plates",
    "register_visitor",
];

/// The gates `open_gate` knows, with how long each stays open.
pub const GATES: [(&str, u64); 3] = [("main", 5), ("pedestrian", 5), ("garage", 20)];

/// What a resident does when the concierge calls them (the example's stand-in for a phone call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    Approves,
    Declines,
    NoAnswer,
}

#[derive(Debug)]
struct Resident {
    name: &'static str,
    unit: &'static str,
    answer: Reaction,
}

#[derive(Debug)]
struct Expected {
    visitor: &'static str,
    unit: &'static str,
    plate: Option<&'static str>,
    note: &'static str,
}

#[derive(Debug)]
struct Sighting {
    plate: &'static str,
    gate: &'static str,
    /// Seconds before the backend started.
    secs_before_start: u64,
}

#[derive(Debug)]
struct Clearance {
    /// The visitor's name as cleared (normalized).
    visitor: String,
    unit: &'static str,
    by: &'static str,
    until: Instant,
}

#[derive(Debug)]
struct Visit {
    id: String,
    visitor: String,
    unit: &'static str,
}

/// The whole state behind the endpoints.
#[derive(Debug)]
pub struct Gate {
    started: Instant,
    residents: Vec<Resident>,
    expected: Vec<Expected>,
    sightings: Vec<Sighting>,
    clearances: Vec<Clearance>,
    visits: Vec<Visit>,
    openings: HashMap<&'static str, u32>,
}

impl Gate {
    /// The example community: a few residents, today's expected visitors, the last hour of plates.
    pub fn example(now: Instant) -> Self {
        use Reaction::*;
        let residents = vec![
            Resident { name: "Ana García", unit: "4B", answer: Approves },
            Resident { name: "Ana Torres", unit: "9D", answer: NoAnswer },
            Resident { name: "John Miller", unit: "12A", answer: NoAnswer },
            Resident { name: "Lucía Fernández", unit: "7C", answer: Declines },
            Resident { name: "Robert Chen", unit: "2A", answer: Approves },
        ];
        let expected = vec![
            Expected {
                visitor: "Carlos Ruiz",
                unit: "4B",
                plate: Some("ABC123"),
                note: "plumber, expected today until 18:00",
            },
            Expected { visitor: "Sarah Johnson", unit: "12A", plate: None, note: "family visit, on foot" },
            Expected {
                visitor: "María López",
                unit: "7C",
                plate: Some("XYZ789"),
                note: "cleaning service, every Tuesday",
            },
        ];
        let sightings = vec![
            Sighting { plate: "ABC123", gate: "main", secs_before_start: 40 },
            Sighting { plate: "KLM456", gate: "garage", secs_before_start: 600 },
            Sighting { plate: "XYZ789", gate: "main", secs_before_start: 1500 },
            Sighting { plate: "JKR221", gate: "main", secs_before_start: 2700 },
        ];
        Gate {
            started: now,
            residents,
            expected,
            sightings,
            clearances: Vec::new(),
            visits: Vec::new(),
            openings: HashMap::new(),
        }
    }

    /// Run the function `tool` with its arguments. `None` when there is no such function.
    pub fn call(&mut self, tool: &str, args: &Map<String, Value>, now: Instant) -> Option<Value> {
        let reply = match tool {
            "check_visitor" => self.check_visitor(args, now),
            "find_resident" => self.find_resident(args),
            "notify_resident" => self.notify_resident(args, now),
            "open_gate" => self.open_gate(args, now),
            "get_recent_plates" => self.get_recent_plates(args, now),
            "register_visitor" => self.register_visitor(args, now),
            _ => return None,
        };
        Some(reply)
    }

    fn check_visitor(&mut self, args: &Map<String, Value>, now: Instant) -> Value {
        let Some(visitor) = text(args, "visitor_name") else {
            return refuse("missing visitor_name: ask the caller for their full name, then check again");
        };
        let wanted = tokens(visitor);
        if wanted.is_empty() {
            return refuse("missing visitor_name: ask the caller for their full name, then check again");
        }
        let hits: Vec<&Expected> =
            self.expected.iter().filter(|e| name_matches(&wanted, &tokens(e.visitor))).collect();
        if hits.is_empty() {
            return json!({
                "ok": false,
                "expected": false,
                "reason": "visitor not expected; offer to call the resident (notify_resident) or the guard",
            });
        }
        if wanted.len() < 2 && hits.iter().all(|e| tokens(e.visitor) != wanted) {
            return refuse(
                "only one name given: ask for the visitor's first and last name, then check again",
            );
        }
        let hits: Vec<&Expected> = match text(args, "visiting") {
            Some(visiting) => {
                let units: Vec<&str> = self.resolve(visiting).iter().map(|r| r.unit).collect();
                if units.is_empty() {
                    return refuse(
                        "no resident matches whom they say they visit: ask again, or use find_resident",
                    );
                }
                let hits: Vec<&Expected> = hits.into_iter().filter(|e| units.contains(&e.unit)).collect();
                if hits.is_empty() {
                    return json!({
                        "ok": false,
                        "expected": false,
                        "reason": "visitor not expected by that resident; offer to call the resident (notify_resident) or the guard",
                    });
                }
                hits
            }
            None => hits,
        };
        let [hit] = hits[..] else {
            return refuse(
                "more than one expected visitor matches: ask whom they are visiting, then check again",
            );
        };
        let resident = self.resident_of(hit.unit);
        let mut reply = json!({
            "ok": true,
            "expected": true,
            "visitor": hit.visitor,
            "resident": resident,
            "note": hit.note,
            "next": "open the gate the visitor is at with open_gate, then register_visitor",
        });
        if let Some(plate) = text(args, "plate") {
            let matches = hit.plate.is_some_and(|p| compact_plate(plate) == p);
            reply["plate_matches"] = json!(matches);
            if !matches {
                reply["plate_note"] =
                    json!("the plate differs from the one on file; the visitor may still enter");
            }
        }
        let (visitor, unit) = (normalize(hit.visitor), hit.unit);
        self.clear(visitor, unit, "expected visitor list", now);
        reply
    }

    fn find_resident(&self, args: &Map<String, Value>) -> Value {
        let query =
            [text(args, "name"), text(args, "unit")].into_iter().flatten().collect::<Vec<_>>().join(" ");
        if query.trim().is_empty() {
            return refuse("give a name or a unit number to look up");
        }
        let found = self.resolve(&query);
        if found.is_empty() {
            return refuse("no resident matches; ask the caller to spell the name or give the unit number");
        }
        let matches: Vec<Value> =
            found.iter().map(|r| json!({ "resident": r.name, "unit": r.unit })).collect();
        let note = if matches.len() == 1 {
            "one match: use this name with the other functions"
        } else {
            "several matches: ask the caller which one (say the names, not the units)"
        };
        json!({ "ok": true, "matches": matches, "note": note })
    }

    fn notify_resident(&mut self, args: &Map<String, Value>, now: Instant) -> Value {
        let Some(visitor) = text(args, "visitor_name") else {
            return refuse("missing visitor_name: ask the caller for their full name first");
        };
        let resident = match self.one_resident(args.get("resident")) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let (name, unit, answer) = (resident.name, resident.unit, resident.answer);
        match answer {
            Reaction::Approves => {
                self.clear(normalize(visitor), unit, "resident approved by phone", now);
                json!({
                    "ok": true,
                    "answered": true,
                    "approved": true,
                    "resident": name,
                    "next": "open the gate the visitor is at with open_gate, then register_visitor",
                })
            }
            Reaction::Declines => json!({
                "ok": false,
                "answered": true,
                "approved": false,
                "resident": name,
                "reason": "the resident does not want to let this visitor in; do not open; tell the visitor politely, offer the guard",
            }),
            Reaction::NoAnswer => json!({
                "ok": false,
                "answered": false,
                "approved": false,
                "resident": name,
                "reason": "the resident did not answer; do not open; offer to transfer to the guard",
            }),
        }
    }

    fn open_gate(&mut self, args: &Map<String, Value>, now: Instant) -> Value {
        let gate_arg = text(args, "gate").map(|g| g.trim().to_lowercase()).unwrap_or_default();
        let Some(&(gate, seconds)) = GATES.iter().find(|(g, _)| *g == gate_arg) else {
            return refuse("unknown gate: use main (cars), pedestrian (on foot) or garage");
        };
        let Some(visitor) = text(args, "visitor_name") else {
            return refuse("missing visitor_name: say whom the gate opens for");
        };
        self.clearances.retain(|c| c.until > now);
        let wanted = tokens(visitor);
        let Some(clearance) = self.clearances.iter().find(|c| {
            let cleared = tokens(&c.visitor);
            cleared == wanted || (wanted.len() >= 2 && name_matches(&wanted, &cleared))
        }) else {
            return json!({
                "ok": false,
                "gate": gate,
                "reason": format!(
                    "no positive check for {visitor}: do not open; use check_visitor or notify_resident first, or offer the guard"
                ),
            });
        };
        let (unit, by) = (clearance.unit, clearance.by);
        *self.openings.entry(gate).or_default() += 1;
        json!({
            "ok": true,
            "gate": gate,
            "opened_for_seconds": seconds,
            "visiting": self.resident_of(unit),
            "authorized_by": by,
            "say": "tell the visitor the gate is open now and to come through",
        })
    }

    fn get_recent_plates(&self, args: &Map<String, Value>, now: Instant) -> Value {
        let limit = args.get("limit").and_then(Value::as_u64).unwrap_or(5).clamp(1, 10) as usize;
        let filter = text(args, "plate").map(compact_plate);
        let elapsed = now.saturating_duration_since(self.started).as_secs();
        let mut seen: Vec<&Sighting> =
            self.sightings.iter().filter(|s| filter.as_deref().is_none_or(|f| s.plate == f)).collect();
        seen.sort_by_key(|s| s.secs_before_start);
        if seen.is_empty() {
            return refuse(
                "that plate was not read at any gate in the last hour; ask the caller to read it again or to pull up to the camera",
            );
        }
        let plates: Vec<Value> = seen
            .iter()
            .take(limit)
            .map(|s| {
                let mut entry = json!({
                    "plate": s.plate,
                    "gate": s.gate,
                    "minutes_ago": (s.secs_before_start + elapsed) / 60,
                });
                if let Some(e) = self.expected.iter().find(|e| e.plate == Some(s.plate)) {
                    entry["expected_visitor"] = json!(e.visitor);
                }
                entry
            })
            .collect();
        json!({ "ok": true, "plates": plates })
    }

    fn register_visitor(&mut self, args: &Map<String, Value>, now: Instant) -> Value {
        let Some(visitor) = text(args, "visitor_name") else {
            return refuse("missing visitor_name: pass the visitor's full name");
        };
        let unit = match self.one_resident(args.get("resident")) {
            Ok(r) => r.unit,
            Err(reply) => return reply,
        };
        let visitor = visitor.trim().to_owned();
        let wanted = tokens(&visitor);
        let cleared = self.clearances.iter().any(|c| c.until > now && tokens(&c.visitor) == wanted);
        let id = format!("V-{}", 1001 + self.visits.len());
        self.visits.push(Visit { id: id.clone(), visitor: visitor.clone(), unit });
        let mut reply = json!({
            "ok": true,
            "visit_id": id,
            "visitor": visitor,
            "resident": self.resident_of(unit),
            "checked": cleared,
        });
        if let Some(plate) = text(args, "plate") {
            reply["plate"] = json!(compact_plate(plate));
        }
        if let Some(purpose) = text(args, "purpose") {
            reply["purpose"] = json!(purpose.trim());
        }
        reply
    }

    /// Remember a positive check for `visitor` (normalized).
    fn clear(&mut self, visitor: String, unit: &'static str, by: &'static str, now: Instant) {
        self.clearances.retain(|c| c.until > now && c.visitor != visitor);
        self.clearances.push(Clearance { visitor, unit, by, until: now + CLEARANCE_TTL });
    }

    /// The one resident `arg` names (by name or unit), or the refusal to return.
    fn one_resident(&self, arg: Option<&Value>) -> Result<&Resident, Value> {
        let Some(query) = arg.and_then(Value::as_str).filter(|q| !q.trim().is_empty()) else {
            return Err(refuse("missing resident: pass the resident's name or unit"));
        };
        match self.resolve(query)[..] {
            [one] => Ok(one),
            [] => {
                Err(refuse("no resident matches; ask the caller to spell the name or give the unit number"))
            }
            _ => {
                Err(refuse("several residents match: ask the caller for the full name, or use find_resident"))
            }
        }
    }

    /// Residents a caller's words point at: a unit ("4B", "apartment 4 b") or a name, whole
    /// or in part ("Garcia", "Mrs. García", "Ana").
    fn resolve(&self, query: &str) -> Vec<&Resident> {
        let words: Vec<String> = tokens(query).into_iter().filter(|w| !is_filler(w)).collect();
        if words.is_empty() {
            return Vec::new();
        }
        let compact = words.concat();
        let by_unit: Vec<&Resident> = self
            .residents
            .iter()
            .filter(|r| words.iter().any(|w| *w == r.unit.to_lowercase()) || compact == r.unit.to_lowercase())
            .collect();
        if !by_unit.is_empty() {
            return by_unit;
        }
        self.residents.iter().filter(|r| name_matches(&words, &tokens(r.name))).collect()
    }

    fn resident_of(&self, unit: &str) -> Value {
        match self.residents.iter().find(|r| r.unit == unit) {
            Some(r) => json!(r.name),
            None => Value::Null,
        }
    }

    /// How many times each gate opened (for the log and tests).
    pub fn openings(&self, gate: &str) -> u32 {
        self.openings.get(gate).copied().unwrap_or(0)
    }

    /// The visit log: `(id, visitor, unit)`.
    pub fn visits(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.visits.iter().map(|v| (v.id.as_str(), v.visitor.as_str(), v.unit))
    }
}

/// A negative answer with its reason.
fn refuse(reason: &str) -> Value {
    json!({ "ok": false, "reason": reason })
}

/// A non-blank string argument.
fn text<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// Every word of `wanted` is a word of `name` ("Garcia" ⊂ "Ana García").
fn name_matches(wanted: &[String], name: &[String]) -> bool {
    !wanted.is_empty() && wanted.iter().all(|w| name.contains(w))
}

/// Lowercase words without accents or punctuation: "Mrs. García-Núñez" → [mrs, garcia, nunez].
pub fn tokens(s: &str) -> Vec<String> {
    normalize(s).split_whitespace().map(str::to_owned).collect()
}

/// Lowercase, accents folded, punctuation turned into spaces, single spaces.
pub fn normalize(s: &str) -> String {
    let folded: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words callers put around names and units that identify nothing.
fn is_filler(word: &str) -> bool {
    const FILLER: [&str; 24] = [
        "apartment",
        "apt",
        "unit",
        "flat",
        "suite",
        "house",
        "number",
        "no",
        "the",
        "mr",
        "mrs",
        "ms",
        "miss",
        "dr",
        "depto",
        "dpto",
        "departamento",
        "casa",
        "numero",
        "el",
        "la",
        "sr",
        "sra",
        "senora",
    ];
    FILLER.contains(&word) || word == "senor" || word == "srta"
}

/// A plate as the cameras report it: "abc-123" → "ABC123".
pub fn compact_plate(plate: &str) -> String {
    plate.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn names_are_folded() {
        assert_eq!(normalize("  Mrs. García-NÚÑEZ "), "mrs garcia nunez");
        assert_eq!(tokens("Lucía Fernández"), ["lucia", "fernandez"]);
        assert_eq!(compact_plate("abc-12 3"), "ABC123");
    }

    #[test]
    fn residents_resolve_by_unit_or_name() {
        let gate = Gate::example(Instant::now());
        let units = |q: &str| gate.resolve(q).iter().map(|r| r.unit).collect::<Vec<_>>();
        assert_eq!(units("apartment 4 b"), ["4B"]);
        assert_eq!(units("12a"), ["12A"]);
        assert_eq!(units("Mrs. Garcia"), ["4B"]);
        assert_eq!(units("ana"), ["4B", "9D"]);
        assert_eq!(units("Señora Fernández"), ["7C"]);
        assert!(units("Smith").is_empty());
        assert!(units("the").is_empty());
    }

    #[test]
    fn a_clearance_expires() {
        let t0 = Instant::now();
        let mut gate = Gate::example(t0);
        let check = json!({ "visitor_name": "Carlos Ruiz", "visiting": "4B" });
        assert_eq!(gate.call("check_visitor", &args(check), t0).and_then(|v| v["ok"].as_bool()), Some(true));
        let open = args(json!({ "gate": "main", "visitor_name": "carlos ruiz" }));
        assert_eq!(gate.call("open_gate", &open, t0).and_then(|v| v["ok"].as_bool()), Some(true));
        let later = t0 + CLEARANCE_TTL + Duration::from_secs(1);
        assert_eq!(gate.call("open_gate", &open, later).and_then(|v| v["ok"].as_bool()), Some(false));
        assert_eq!(gate.openings("main"), 1);
    }

    #[test]
    fn unknown_tool_is_none() {
        let mut gate = Gate::example(Instant::now());
        assert!(gate.call("launch_rocket", &Map::new(), Instant::now()).is_none());
    }
}
