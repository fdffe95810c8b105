//! An optional judge model grading outputs on a 0-3 rubric.

use std::collections::HashMap;

use augur_runtime::ChatMessage;

use crate::store::Row;
use crate::suite::BenchPrompt;
use crate::target::{Request, Target};

const RUBRIC: &str = "You grade an AI assistant's answer. Reply with a single digit and nothing else:\n\
3 = correct and complete, with good reasoning;\n\
2 = partially correct, or correct but truncated;\n\
1 = wrong but reasonable;\n\
0 = wrong, empty or garbage.";

/// Long-context inputs would swamp a small judge: keep each part bounded.
const MAX_PART: usize = 6000;

fn clip(s: &str) -> &str {
    if s.len() <= MAX_PART {
        return s;
    }
    &s[..augur_persist::floor_char_boundary(s, MAX_PART)]
}

pub fn judge_messages(prompt: &BenchPrompt, output: &str) -> Vec<ChatMessage> {
    let mut convo = String::new();
    for m in prompt.chat() {
        convo.push_str(&format!("[{}]\n{}\n\n", m.role, clip(&m.content)));
    }
    let user = format!("Conversation:\n{convo}[assistant answer to grade]\n{}\n\nGrade (0-3):", clip(output));
    vec![ChatMessage::new("system", RUBRIC), ChatMessage::new("user", user)]
}

/// The first digit 0-3 in the judge's reply.
pub fn parse_grade(reply: &str) -> Option<u8> {
    reply.chars().find(|c| ('0'..='3').contains(c)).and_then(|c| c.to_digit(10)).map(|d| d as u8)
}

/// Grade every distinct successful output once and copy the grade to its rows.
pub fn grade(judge: &dyn Target, prompts: &[(&str, &BenchPrompt)], rows: &mut [Row]) {
    let mut grades: HashMap<(String, String, String), Option<u8>> = HashMap::new();
    for row in rows.iter_mut().filter(|r| r.error.is_none()) {
        let Some((_, p)) = prompts.iter().find(|(s, p)| *s == row.suite && p.id == row.prompt) else { continue };
        let key = (row.suite.clone(), row.prompt.clone(), row.output.clone());
        let g = *grades.entry(key).or_insert_with(|| ask(judge, p, &row.output));
        row.judge = g;
    }
}

fn ask(judge: &dyn Target, p: &BenchPrompt, output: &str) -> Option<u8> {
    let messages = judge_messages(p, output);
    let req = Request { messages: &messages, max_tokens: 8, temperature: 0.0, seed: 0, spec: None };
    match judge.generate(&req) {
        Ok(g) => parse_grade(&g.text),
        Err(e) => {
            tracing::warn!("judge failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grades_parse() {
        assert_eq!(super::parse_grade(" 3"), Some(3));
        assert_eq!(super::parse_grade("Grade: 2/3"), Some(2));
        assert_eq!(super::parse_grade("nine"), None);
        assert_eq!(super::parse_grade("5 then 1"), Some(1));
    }
}
