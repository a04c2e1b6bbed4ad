import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeConfigBytes } from '../../src/config/config-text.ts';
import { parseXmlTree, type XmlElement } from '../../src/config/xml-tree.ts';

function tree(text: string): readonly XmlElement[] {
  const r = parseXmlTree(text);
  if (!r.ok) assert.fail(`unexpected XML error at line ${r.line}: ${r.message}`);
  return r.elements;
}

/** name@line(attrs)[children] — compact enough to compare whole trees. */
function show(els: readonly XmlElement[]): string[] {
  return els.map((e) => {
    const attrs = [...e.attrs].map(([k, v]) => `${k}=${v}`).join(',');
    const kids = e.children.length > 0 ? `[${show(e.children).join(' ')}]` : '';
    return `${e.name}@${e.line}(${attrs})${kids}`;
  });
}

test('element and attribute names are lower-cased, values kept, lines counted from 1', () => {
  const els = tree(
    '<?xml version="1.0"?>\n<HEAD Version="2.5">\n  <CreateFile START="True"></createfile>\n  <Remote IP="A.b" Name="Mod"/>\n</head>\n',
  );
  assert.deepEqual(show(els), ['head@2(version=2.5)[createfile@3(start=True) remote@4(ip=A.b,name=Mod)]']);
});

test('comments, free text such as "# comment", CDATA and processing instructions are dropped', () => {
  const els = tree(
    '<head>\n  # 注释 & more text\n  <!-- <debug start="true"/> -->\n  <![CDATA[<x/>]]>\n  <?pi stuff?>\n  <debug start="false"/>\n</head>',
  );
  assert.deepEqual(show(els), ['head@1()[debug@6(start=false)]']);
});

test('text outside the root and a declaration after a blank line are tolerated', () => {
  const els = tree('\n\n<?xml version="1.0" encoding="ISO-8859-1"?>\n# pasted from a blog\n<head>\n<a/>\n</head>\ntrailing words\n');
  assert.deepEqual(show(els), ['head@5()[a@6()]']);
});

test('CRLF and lone CR line endings count as one line each', () => {
  assert.deepEqual(show(tree('<head>\r\n<a/>\r\n\r\n<b/>\r<c/>\r\n</head>')), ['head@1()[a@2() b@4() c@5()]']);
});

test('a tag spanning lines gets the line of its "<"; attributes may be spread over lines', () => {
  assert.deepEqual(show(tree('<head>\n<tuning\n  quietMs="1"\n  watcher="dirs"/>\n<x/></head>')), [
    'head@1()[tuning@2(quietms=1,watcher=dirs) x@5()]',
  ]);
});

test('entities are decoded; a bare & (a common paste) is kept as a literal &', () => {
  const els = tree('<head a="x&amp;y" b="&lt;&#20013;&#x41;" c="p?q=1&r=2" d=" spaced "/>');
  assert.deepEqual(
    [...(els[0]?.attrs ?? [])],
    [
      ['a', 'x&y'],
      ['b', '<中A'],
      ['c', 'p?q=1&r=2'],
      ['d', ' spaced '],
    ],
  );
});

test('names that are JavaScript object internals are ordinary elements', () => {
  assert.deepEqual(show(tree('<head><__proto__ constructor="1"/><toString/><prototype/></head>')), [
    'head@1()[__proto__@1(constructor=1) tostring@1() prototype@1()]',
  ]);
});

test('several top-level elements are all returned', () => {
  assert.deepEqual(show(tree('<a/>\n<head/>')), ['a@1()', 'head@2()']);
});

test('syntax errors come back with the line the validator found', () => {
  const cases: [string, number, RegExp][] = [
    ['<head>\n<sersync>\n</head>', 3, /closing tag 'sersync'/],
    ['<head>\n\n<a x=1/>\n</head>', 3, /without value|x/],
    ['<head>\n<a x="1" X="2"/>\n</head>', 2, /repeated/],
    ['hello', 1, /./],
    ['', 1, /Start tag expected/],
    ['<head>\n<a/>\n', 1, /./],
  ];
  for (const [text, line, message] of cases) {
    const r = parseXmlTree(text);
    assert.equal(r.ok, false, JSON.stringify(text));
    if (!r.ok) {
      assert.equal(r.line, line, JSON.stringify(text));
      assert.match(r.message, message);
    }
  }
});

test('decoding: valid UTF-8 wins over the declaration, a BOM is stripped, anything else is latin1', () => {
  const utf8 = Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><head><!-- 中文 --></head>', 'utf8');
  assert.deepEqual(decodeConfigBytes(utf8), { text: utf8.toString('utf8'), encoding: 'utf8' });
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<head/>')]);
  assert.deepEqual(decodeConfigBytes(bom), { text: '<head/>', encoding: 'utf8' });
  const latin1 = Buffer.from([0x3c, 0x61, 0x20, 0x62, 0x3d, 0x22, 0xe9, 0x22, 0x2f, 0x3e]); // <a b="\xe9"/>
  assert.deepEqual(decodeConfigBytes(latin1), { text: '<a b="é"/>', encoding: 'latin1' });
});
