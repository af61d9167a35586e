-- Reserved: migration 0010 belongs to another branch (ops). This no-op keeps the numbers whole on this branch
-- only; the merge replaces it with that branch's 0010 (nothing here to carry over).
SELECT 1;
