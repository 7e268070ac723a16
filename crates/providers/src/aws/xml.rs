//! The EC2 Query API's XML answers as a small tree (quick-xml's reader underneath):
//! elements by local name, their text, their children. Answers are small (one page of
//! instances), so a tree is simpler than streaming and costs nothing that matters.

use quick_xml::events::Event;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Node {
    /// Local name (namespace prefix dropped).
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The document's root element.
    pub fn parse(xml: &str) -> Result<Node, String> {
        let mut r = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<Node> = vec![Node::default()];
        loop {
            match r.read_event().map_err(|e| at(&r, e))? {
                Event::Start(s) => stack.push(Node {
                    name: local(s.name().as_ref()),
                    ..Node::default()
                }),
                Event::Empty(s) => top(&mut stack).children.push(Node {
                    name: local(s.name().as_ref()),
                    ..Node::default()
                }),
                Event::End(_) => {
                    if stack.len() < 2 {
                        return Err(at(&r, "a closing tag with nothing open"));
                    }
                    let done = stack.pop().expect("checked above");
                    top(&mut stack).children.push(done);
                }
                Event::Text(t) => top(&mut stack).text += &t.decode().map_err(|e| at(&r, e))?,
                Event::CData(t) => top(&mut stack).text += &t.decode().map_err(|e| at(&r, e))?,
                Event::GeneralRef(g) => {
                    let name = g.decode().map_err(|e| at(&r, e))?;
                    let entity = format!("&{name};");
                    let s = quick_xml::escape::unescape(&entity).map_err(|e| at(&r, e))?;
                    top(&mut stack).text += &s;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let doc = stack.pop().filter(|_| stack.is_empty());
        doc.and_then(|d| d.children.into_iter().next())
            .ok_or_else(|| "not a complete XML document".into())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element down a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, p| n.child(p))
    }

    /// The `<item>`s of the list element `set` (`instanceStatusSet`, `eventsSet`…).
    pub fn items<'a>(&'a self, set: &str) -> impl Iterator<Item = &'a Node> + 'a {
        self.child(set)
            .into_iter()
            .flat_map(|s| s.children.iter().filter(|c| c.name == "item"))
    }

    /// The trimmed text of the element down `path`, if there is any.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path)
            .map(|n| n.text.trim())
            .filter(|t| !t.is_empty())
    }
}

fn top(stack: &mut [Node]) -> &mut Node {
    stack
        .last_mut()
        .expect("the document node is never popped before the end")
}

fn local(qname: &[u8]) -> String {
    let s = String::from_utf8_lossy(qname);
    s.rsplit(':').next().unwrap_or_default().to_string()
}

fn at(r: &quick_xml::Reader<&[u8]>, e: impl std::fmt::Display) -> String {
    format!("at byte {}: {e}", r.buffer_position())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_lists_text_and_entities() {
        let x = r#"<?xml version="1.0" encoding="UTF-8"?>
<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><set><item><a>1 &amp; 2</a></item><item><a/></item></set><b><![CDATA[x<y]]></b></R>"#;
        let n = Node::parse(x).unwrap();
        assert_eq!(n.name, "R");
        let items: Vec<_> = n.items("set").collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_at(&["a"]), Some("1 & 2"));
        assert_eq!(items[1].text_at(&["a"]), None);
        assert_eq!(n.text_at(&["b"]), Some("x<y"));
    }

    #[test]
    fn broken_xml_is_an_error_not_a_panic() {
        assert!(Node::parse("<a><b></a>").is_err());
        assert!(Node::parse("").is_err());
        assert!(Node::parse("<a>").is_err());
    }
}
