//! Prints the default store's models as JSON, one per line.

use augur_store::Store;

fn main() {
    match Store::open_default() {
        Ok(store) => {
            for entry in store.list() {
                println!("{}", serde_json::to_string(&entry).unwrap_or_default());
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
