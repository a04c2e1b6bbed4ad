import type { PluginName } from './model.ts';
import type { XmlElement } from './xml-tree.ts';

/** An element found in the tree, with the path that names it in messages. */
export interface ConfigNode {
  readonly el: XmlElement;
  /** As sersync2's file spells it, e.g. `userDefinedPort`. */
  readonly tag: string;
  /** The path of the parent, e.g. `<sersync><rsync>`; '' below `<head>`. */
  readonly parent: string;
  /** Attributes shown in the element's own segment, e.g. ` name="socket"` for a plugin block. */
  readonly extra: string;
}

const ROOT_TAG = 'head';

export function headNode(el: XmlElement): ConfigNode {
  return { el, tag: ROOT_TAG, parent: '', extra: '' };
}

export function child(node: ConfigNode | undefined, tag: string): ConfigNode | undefined {
  return children(node, tag)[0];
}

export function children(node: ConfigNode | undefined, tag: string): ConfigNode[] {
  if (node === undefined) return [];
  const lower = tag.toLowerCase();
  const parent = node.parent + segment(node);
  return node.el.children.filter((e) => e.name === lower).map((el) => ({ el, tag, parent, extra: '' }));
}

/** The first top-level `<plugin name="NAME">`; plugin names are attribute values, so they are case-sensitive. */
export function pluginBlock(head: ConfigNode, name: PluginName): ConfigNode | undefined {
  const el = head.el.children.find((e) => e.name === 'plugin' && e.attrs.get('name') === name);
  return el === undefined ? undefined : { el, tag: 'plugin', parent: '', extra: ` name="${name}"` };
}

export function attr(node: ConfigNode | undefined, key: string): string | undefined {
  return node?.el.attrs.get(key.toLowerCase());
}

/** `<sersync><rsync><timeout>`, or with an attribute `<sersync><rsync><timeout time="abc">`. */
export function where(node: ConfigNode, key?: string): string {
  if (node.tag === ROOT_TAG && node.parent === '') return '<head>';
  if (key === undefined) return node.parent + segment(node);
  const value = attr(node, key);
  const shown = value === undefined ? '' : ` ${key}="${value.replace(/[\n\r\t]/g, ' ')}"`;
  return `${node.parent}<${node.tag}${node.extra}${shown}>`;
}

function segment(node: ConfigNode): string {
  return node.tag === ROOT_TAG && node.parent === '' ? '' : `<${node.tag}${node.extra}>`;
}
