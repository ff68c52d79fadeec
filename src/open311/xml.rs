//! GeoReport's XML: the JSON answer with every list as repeated elements
//! (no schema, no namespace; `docs/contract.md` §14).

use serde_json::Value;

/// `<?xml…?><root><item>…</item>…</root>` for a list, `<root>…</root>`
/// for an object.
pub fn document(root: &str, item: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    match value {
        Value::Array(items) => {
            open(&mut out, root);
            for v in items {
                element(&mut out, item, v);
            }
            close(&mut out, root);
        }
        v => element(&mut out, root, v),
    }
    out
}

/// The element name of one item of a list field.
fn item_of(list: &str) -> &str {
    match list {
        "endpoints" => "endpoint",
        "formats" => "format",
        "attributes" => "attribute",
        "values" => "value",
        "keywords" => "keyword",
        other => other,
    }
}

fn element(out: &mut String, name: &str, value: &Value) {
    open(out, name);
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => escape(out, s),
        Value::Array(items) => {
            for v in items {
                element(out, item_of(name), v);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                element(out, k, v);
            }
        }
    }
    close(out, name);
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all: dropped rather than sent broken.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::document;
    use serde_json::json;

    #[test]
    fn lists_repeat_their_item_and_text_is_escaped() {
        let v = json!([{ "description": "a<b & \"c\"\u{1}" }, { "lat": 36.06 }, { "address_id": null }]);
        assert_eq!(
            document("service_requests", "request", &v),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><service_requests>\
             <request><description>a&lt;b &amp; &quot;c&quot;</description></request>\
             <request><lat>36.06</lat></request><request><address_id></address_id></request></service_requests>"
        );
    }

    #[test]
    fn nested_lists_take_their_item_names() {
        let v = json!({ "endpoints": [{ "formats": ["text/xml", "application/json"] }] });
        assert_eq!(
            document("discovery", "", &v),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><discovery><endpoints><endpoint><formats>\
             <format>text/xml</format><format>application/json</format></formats></endpoint></endpoints></discovery>"
        );
    }
}
