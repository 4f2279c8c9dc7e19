import numpy as np
import scipy.sparse as sp

import monosemantic.pairs as P


def test_pitfall_counts_and_worst_pairs():
    # rows 0 and 1: same direction, disjoint supports; rows 2 and 3: orthogonal, identical supports
    H = np.array([[1.0, 0], [1.0, 0.01], [0, 1.0], [1.0, 0]])
    on = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], bool)
    a, b = P.all_pairs(4)
    cos = P.cosines(H, a, b)
    shared, jac = P.overlaps(sp.csr_matrix(on), a, b)
    assert np.allclose(P.overlaps(on, a, b)[1], jac)  # dense and sparse supports agree
    pit = P.pitfall(cos, shared, jac)
    pair = {(int(x), int(y)): i for i, (x, y) in enumerate(zip(a, b))}
    assert pit["high_cos_no_shared"] == 3  # (0,1), (0,3), (1,3): parallel rows that share nothing
    assert pit["low_cos_mostly_shared"] == 1 and pit["worst"]["low cosine, mostly shared"] == pair[(2, 3)]
    assert pit["worst"]["high cosine, nothing shared"] in (pair[(0, 3)],)  # cosine exactly 1
