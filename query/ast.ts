/**
 * The engine's own parse of a statement, as `EXPLAIN AST` prints it: one
 * node a line, one space of indentation a level, `Kind [detail] [(alias a)]
 * [(children N)]`. The endpoint's policy (query/policy.ts) walks this tree,
 * so what it judges is what the engine will run — never the user's text.
 */

export interface AstNode {
  /** `Function`, `TableIdentifier`, `SelectQuery`, `Storage definition`, … */
  kind: string;
  /** What follows the kind: a function's name, a table's `db.name`, a literal, … (aliases and child counts removed). */
  detail: string;
  children: AstNode[];
  parent: AstNode | undefined;
}

/** Node kinds whose name has a space in it (all others are one word). */
const TWO_WORD_KINDS = ['Storage definition', 'Columns definition', 'Dictionary definition', 'Dictionary lifetime', 'Dictionary layout', 'Dictionary range', 'SYSTEM query'];

/** The tree of `EXPLAIN AST` output; throws on a shape it does not know, so nothing is skipped unseen. */
export function parseExplainAst(text: string): AstNode {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error('EXPLAIN AST printed nothing');
  const root: AstNode = { kind: '', detail: '', children: [], parent: undefined };
  const stack: Array<{ depth: number; node: AstNode }> = [{ depth: -1, node: root }];
  for (const line of lines) {
    const depth = line.length - line.trimStart().length;
    let rest = line.slice(depth);
    const kind = TWO_WORD_KINDS.find((k) => rest === k || rest.startsWith(`${k} `)) ?? rest.split(' ', 1)[0]!;
    rest = rest.slice(kind.length);
    const children = /\s*\(children (\d+)\)$/.exec(rest);
    if (children) rest = rest.slice(0, children.index);
    const alias = /\s*\(alias [^()]*\)$/.exec(rest);
    if (alias) rest = rest.slice(0, alias.index);
    while (stack.at(-1)!.depth >= depth) stack.pop();
    const parent = stack.at(-1)!;
    if (depth !== parent.depth + 1) throw new Error(`EXPLAIN AST: unexpected indentation at ${JSON.stringify(line)}`);
    const node: AstNode = { kind, detail: rest.trim(), children: [], parent: parent.node === root ? undefined : parent.node };
    parent.node.children.push(node);
    stack.push({ depth, node });
  }
  if (root.children.length !== 1) throw new Error(`EXPLAIN AST printed ${root.children.length} statements`);
  return root.children[0]!;
}

/** Every node of the tree, depth first, the root first. */
export function* walk(node: AstNode): Generator<AstNode> {
  yield node;
  for (const c of node.children) yield* walk(c);
}
