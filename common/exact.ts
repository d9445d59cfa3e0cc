// A compile-time proof that two key sets are the same: `const proof: Exact<A, B> = true` compiles
// only when A and B are equal, so a table keyed by one cannot drift from the other.
export type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
