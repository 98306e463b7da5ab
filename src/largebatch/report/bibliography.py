"""The papers this project replicates, with links to the papers and to official code.

The report's bibliography and each section's heading come from here. ``SOURCE_TAGS`` defines
the tags that sections put beside a published value or protocol fact, so the reader knows
where it was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paper:
    key: str  # the section key in config.yaml `papers:`
    cite: str  # short citation, e.g. "Keskar et al. 2017"
    authors: str
    title: str
    venue: str
    url: str  # the paper (arXiv abstract page)
    code: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (label, url) of official code
    note: str = ""


PAPERS: dict[str, Paper] = {p.key: p for p in [
    Paper("keskar", "Keskar et al. 2017",
          "N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang",
          "On Large-Batch Training for Deep Learning: Generalization Gap and Sharp Minima",
          "ICLR 2017 (arXiv:1609.04836)", "https://arxiv.org/abs/1609.04836",
          (("keskarnitish/large-batch-training", "https://github.com/keskarnitish/large-batch-training"),)),
    Paper("hoffer", "Hoffer, Hubara & Soudry 2017", "E. Hoffer, I. Hubara, D. Soudry",
          "Train longer, generalize better: closing the generalization gap in large batch training of "
          "neural networks", "NeurIPS 2017 (arXiv:1705.08741)", "https://arxiv.org/abs/1705.08741",
          (("eladhoffer/bigBatch", "https://github.com/eladhoffer/bigBatch"),)),
    Paper("masters_luschi", "Masters & Luschi 2018", "D. Masters, C. Luschi",
          "Revisiting Small Batch Training for Deep Neural Networks", "arXiv:1804.07612 (2018)",
          "https://arxiv.org/abs/1804.07612", note="no official code was found"),
    Paper("golmant", "Golmant et al. 2018",
          "N. Golmant, N. Vemuri, Z. Yao, V. Feinberg, A. Gholami, K. Rothauge, M. W. Mahoney, J. Gonzalez",
          "On the Computational Inefficiency of Large Batch Sizes for Stochastic Gradient Descent",
          "arXiv:1811.12941 (2018)", "https://arxiv.org/abs/1811.12941", note="no official code was found"),
    Paper("swap", "Gupta et al. 2020", "V. Gupta, S. Akle Serrano, D. DeCoste",
          "Stochastic Weight Averaging in Parallel: Large-Batch Training That Generalizes Well",
          "ICLR 2020 (arXiv:2001.02312)", "https://arxiv.org/abs/2001.02312",
          note="no official code was found; torch.optim.swa_utils implements the averaging step"),
    Paper("batch_augmentation", "Hoffer et al. 2019",
          "E. Hoffer, T. Ben-Nun, I. Hubara, N. Giladi, T. Hoefler, D. Soudry",
          "Augment your batch: better training with larger batches", "arXiv:1901.09335 (2019); "
          "CVPR 2020 as “Augment Your Batch: Improving Generalization Through Instance Repetition”",
          "https://arxiv.org/abs/1901.09335",
          (("eladhoffer/convNet.pytorch", "https://github.com/eladhoffer/convNet.pytorch"),)),
]}

#: works the sections compare against, beyond the six papers
REFERENCES: dict[str, Paper] = {p.key: p for p in [
    Paper("mccandlish", "McCandlish et al. 2018", "S. McCandlish, J. Kaplan, D. Amodei, OpenAI Dota Team",
          "An Empirical Model of Large-Batch Training", "arXiv:1812.06162 (2018)",
          "https://arxiv.org/abs/1812.06162"),
    Paper("shallue", "Shallue et al. 2019", "C. J. Shallue, J. Lee, J. Antognini, J. Sohl-Dickstein, R. Frostig, "
          "G. E. Dahl", "Measuring the Effects of Data Parallelism on Neural Network Training",
          "JMLR 20(112), 2019 (arXiv:1811.03600)", "https://arxiv.org/abs/1811.03600",
          (("google-research/batch_science",
            "https://github.com/google-research/google-research/tree/master/batch_science"),)),
    Paper("mnist1d", "Greydanus & Kobak 2020", "S. Greydanus, D. Kobak",
          "Scaling Down Deep Learning with MNIST-1D", "arXiv:2011.14439 (2020); ICML 2024",
          "https://arxiv.org/abs/2011.14439", (("greydanus/mnist1d", "https://github.com/greydanus/mnist1d"),),
          note="the dataset of the tiny and cpu scales"),
]}

#: tags a section may put beside a published value or protocol fact
SOURCE_TAGS = {
    "V": "read in the paper's own text (table, figure or page named)",
    "C": "read in the authors' official code (repository and file named)",
    "A": "read in the authors' own poster or slides",
    "S": "from a secondary source (abstract page, review, summary): probably right, not the paper itself",
    "M": "not confirmed from any copy of the paper: shown as the paper's setting only, never as a "
         "published value",
}


def cite(key: str) -> str:
    """The short citation of a section key; the key itself where it is not one of the papers
    (e.g. the baseline section)."""
    p = PAPERS.get(key) or REFERENCES.get(key)
    return p.cite if p else key
