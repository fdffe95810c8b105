"""Write the speculation benchmark prompts (ChatML, as Qwen2.5's template
renders them) to DIR: code editing (the answer copies the input), code
generation, and chat. The same files go to augur and to llama.cpp's tools."""
import pathlib
import sys

SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

PY = '''import json
from dataclasses import dataclass, field


@dataclass
class Order:
    order_id: int
    customer: str
    items: list = field(default_factory=list)
    shipped: bool = False

    def total(self):
        amount = 0.0
        for item in self.items:
            amount += item["price"] * item["quantity"]
        return amount

    def to_json(self):
        return json.dumps({"order_id": self.order_id, "customer": self.customer,
                           "items": self.items, "shipped": self.shipped})


def load_orders(path):
    with open(path) as fh:
        raw = json.load(fh)
    return [Order(**o) for o in raw]
'''

RS = '''use std::collections::HashMap;

pub struct Inventory {
    stock: HashMap<String, u32>,
}

impl Inventory {
    pub fn new() -> Self {
        Inventory { stock: HashMap::new() }
    }

    pub fn add(&mut self, name: &str, count: u32) {
        *self.stock.entry(name.to_string()).or_insert(0) += count;
    }

    pub fn remove(&mut self, name: &str, count: u32) -> bool {
        match self.stock.get_mut(name) {
            Some(n) if *n >= count => {
                *n -= count;
                true
            }
            _ => false,
        }
    }
}
'''

PROMPTS = {
    "edit-rename-py": f"In this code, rename the method `total` to `order_total` everywhere. Return the complete file.\n\n```python\n{PY}```",
    "edit-docstrings-py": f"Add a one-line docstring to every function and method. Return the complete file.\n\n```python\n{PY}```",
    "edit-rust": f"Add a `count(&self, name: &str) -> u32` method to Inventory. Return the complete file.\n\n```rust\n{RS}```",
    "gen-lru": "Write a Python class LRUCache with get and put methods, using OrderedDict.",
    "gen-rust-parse": "Write a Rust function that parses a line like `key=value` into a (String, String) tuple, returning None on bad input.",
    "chat-explain": "Explain the difference between a process and a thread in a few sentences.",
}


def chatml(user):
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, user in PROMPTS.items():
        (out / f"{name}.txt").write_text(chatml(user))


if __name__ == "__main__":
    main()
