import { XMLParser, XMLValidator } from 'fast-xml-parser';

/**
 * confxml.xml as a plain tree. Element and attribute names are lower-cased because sersync2's xmlParser compares
 * names with strcasecmp; attribute values are kept exactly as written (entities decoded). Text, comments, CDATA and
 * processing instructions are dropped: tutorials paste free text such as `# comment` between elements.
 */
export interface XmlElement {
  readonly name: string;
  readonly attrs: ReadonlyMap<string, string>;
  readonly children: readonly XmlElement[];
  /** 1-based line of the element's `<` in the file. */
  readonly line: number;
  /**
   * Set when free text starting with `#` precedes the element on its line (`# <remote …/>`): it looks commented out,
   * but `#` means nothing in XML, so the element is read (sersync2 read it too).
   */
  readonly afterHash?: true;
}

export type XmlTreeResult =
  | { readonly ok: true; readonly elements: readonly XmlElement[] }
  | { readonly ok: false; readonly line: number | null; readonly message: string };

/** Parses confxml.xml text into the top-level elements of the document; a syntax error comes back with its line. */
export function parseXmlTree(source: string): XmlTreeResult {
  const text = normalizeMarkup(source);
  const verdict = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (verdict !== true) {
    return { ok: false, line: verdict.err.line ?? null, message: verdict.err.msg };
  }
  let parsed: unknown;
  try {
    parsed = parser.parse(text);
  } catch (err) {
    return { ok: false, line: null, message: err instanceof Error ? err.message : String(err) };
  }
  const lineStarts = lineStartOffsets(text);
  return { ok: true, elements: toElements(parsed, lineStarts) };
}

// Typed as the `Symbol` wrapper object in fxp.d.ts; it is a plain symbol.
const METADATA = XMLParser.getMetaDataSymbol() as unknown as symbol;

// Names get a '@' prefix inside fast-xml-parser so that no element can be called `__proto__`, `#text` or `:@` there;
// toElements strips it again. (fast-xml-parser 5 applies transformTagName twice to `<empty/>` tags, hence `^@+`; no
// XML name starts with '@'.)
const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  transformTagName: (name: string) => `@${name}`,
  captureMetaData: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  // `false` would leave numeric references (&#20013; &#x41;) undecoded, which sersync2's xmlParser does decode;
  // `true` also knows HTML names such as &nbsp;, harmless in a config file.
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  commentPropName: false,
});

type RawNode = Record<string | symbol, unknown>;

/** The text before an element, on the element's own line, starts with `#`. */
const HASH_BEFORE_ON_LINE = /(?:^|\n)[ \t]*#[^\n]*$/;

function toElements(raw: unknown, lineStarts: readonly number[]): XmlElement[] {
  const out: XmlElement[] = [];
  if (!Array.isArray(raw)) return out;
  let textBefore = '';
  for (const node of raw as RawNode[]) {
    const key = Object.keys(node).find((k) => k.startsWith('@'));
    if (key === undefined) {
      textBefore = typeof node['#text'] === 'string' ? node['#text'] : ''; // text, or CDATA (not free text)
      continue;
    }
    const afterHash = HASH_BEFORE_ON_LINE.test(textBefore);
    textBefore = '';
    const attrs = new Map<string, string>();
    const rawAttrs = node[':@'];
    if (rawAttrs !== null && typeof rawAttrs === 'object') {
      for (const [k, v] of Object.entries(rawAttrs as Record<string, unknown>)) {
        if (!attrs.has(k.slice(1))) attrs.set(k.slice(1), String(v));
      }
    }
    const meta = node[METADATA] as { startIndex?: number } | undefined;
    out.push({
      name: key.replace(/^@+/, ''),
      attrs,
      children: toElements(node[key], lineStarts),
      line: lineOf(meta?.startIndex ?? 0, lineStarts),
      ...(afterHash ? { afterHash: true as const } : {}),
    });
  }
  return out;
}

function lineStartOffsets(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

function lineOf(offset: number, lineStarts: readonly number[]): number {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((lineStarts[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}

const ENTITY = /^&(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);/;

/**
 * Makes sersync2-acceptable input acceptable to a strict XML validator without moving any line: line endings become
 * `\n`; element and attribute names are lower-cased (ASCII only, so lengths stay); the XML declaration is blanked
 * (it may follow a blank line in pasted copies); text outside the root element is blanked; a bare `&` that starts no
 * entity becomes `&amp;`. Comments, CDATA and DOCTYPE are copied as they are. Malformed input is copied unchanged
 * from the point where it stops making sense, so the validator reports it with its line.
 */
function normalizeMarkup(source: string): string {
  const text = source.replace(/\r\n?/g, '\n');
  const out: string[] = [];
  let depth = 0;
  let i = 0;
  const n = text.length;
  const copyUntil = (end: string, from: number): boolean => {
    const j = text.indexOf(end, from);
    if (j < 0) {
      out.push(text.slice(i));
      i = n;
      return false;
    }
    out.push(text.slice(i, j + end.length));
    i = j + end.length;
    return true;
  };
  while (i < n) {
    const ch = text[i];
    if (ch === '<') {
      if (text.startsWith('<!--', i)) {
        copyUntil('-->', i + 4);
      } else if (text.startsWith('<![CDATA[', i)) {
        copyUntil(']]>', i + 9);
      } else if (text.startsWith('<?', i)) {
        const j = text.indexOf('?>', i + 2);
        if (j < 0) {
          out.push(text.slice(i));
          i = n;
        } else {
          out.push(blank(text.slice(i, j + 2)));
          i = j + 2;
        }
      } else if (text.startsWith('<!', i)) {
        const bracket = text.indexOf('[', i);
        const close = text.indexOf('>', i);
        if (bracket >= 0 && (close < 0 || bracket < close)) copyUntil(']', bracket) && copyUntil('>', i);
        else copyUntil('>', i);
      } else {
        const tag = scanTag(text, i);
        out.push(tag.text);
        i = tag.end;
        if (tag.kind === 'open') depth++;
        else if (tag.kind === 'close') depth = Math.max(0, depth - 1);
        else if (tag.kind === 'broken') {
          out.push(text.slice(i));
          i = n;
        }
      }
    } else if (depth === 0) {
      out.push(ch === '\n' ? '\n' : ' ');
      i++;
    } else if (ch === '&') {
      out.push(ENTITY.test(text.slice(i, i + 40)) ? '&' : '&amp;');
      i++;
    } else {
      const j = nextSpecial(text, i);
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out.join('');
}

function nextSpecial(text: string, from: number): number {
  for (let j = from; j < text.length; j++) {
    const c = text[j];
    if (c === '<' || c === '&') return j;
  }
  return text.length;
}

function blank(s: string): string {
  return s.replace(/[^\n]/g, ' ');
}

function lowerAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** One start or end tag from `<` to `>`: names lower-cased, quoted values kept (bare `&` escaped). */
function scanTag(text: string, start: number): { text: string; end: number; kind: 'open' | 'close' | 'empty' | 'broken' } {
  const out: string[] = ['<'];
  let i = start + 1;
  const closing = text[i] === '/';
  if (closing) {
    out.push('/');
    i++;
  }
  let lastSignificant = '';
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '>') {
      out.push('>');
      const kind = closing ? 'close' : lastSignificant === '/' ? 'empty' : 'open';
      return { text: out.join(''), end: i + 1, kind };
    }
    if (c === '"' || c === "'") {
      const j = text.indexOf(c, i + 1);
      if (j < 0) return { text: out.join(''), end: i, kind: 'broken' };
      out.push(
        c,
        text.slice(i + 1, j).replace(/&/g, (amp, off: number, value: string) => (ENTITY.test(value.slice(off, off + 40)) ? amp : '&amp;')),
        c,
      );
      i = j + 1;
      lastSignificant = c;
      continue;
    }
    if (c === '<') return { text: out.join(''), end: i, kind: 'broken' };
    if (/\s|=|\//.test(c)) {
      out.push(c);
      if (!/\s/.test(c)) lastSignificant = c;
      i++;
      continue;
    }
    // A name: the element name or an attribute name.
    let j = i;
    while (j < text.length && !/[\s=/>"'<]/.test(text[j] as string)) j++;
    out.push(lowerAscii(text.slice(i, j)));
    lastSignificant = text[j - 1] as string;
    i = j;
  }
  return { text: out.join(''), end: i, kind: 'broken' };
}
