/** An element sersync-ts reads, with its attributes and children: what structure.ts checks the file against. */
export interface ElementSpec {
  /** As sersync2's shipped file spells it; used in messages. */
  readonly name: string;
  readonly attrs: readonly string[];
  readonly children: readonly ElementSpec[];
  /** Lists (`exclude`, `remote`, `deshost`, `include`); of anything else only the first element counts. */
  readonly many?: boolean;
}

export function el(name: string, attrs: readonly string[], children: readonly ElementSpec[] = [], many = false): ElementSpec {
  return { name, attrs, children, many };
}
