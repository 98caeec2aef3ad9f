"""modaltune.omics: pathway files (SurvPath binary + list form, GMT), expression layouts (SurvPath's Toil-style
BLCA table and a HiSeqV2-layout table derived from it), tumour-sample choice, gene matching, GeneScaler, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modaltune.cli import main
from modaltune.io import read_parquet
from modaltune.omics import (
    GeneScaler,
    read_expression,
    read_pathways,
    restrict_to_genes,
    select_tumour_samples,
)
from modaltune.omics.expression import ExpressionFormatError, detect_layout, expression_genes


@pytest.fixture(scope="module")
def survpath(real_data):
    return real_data / "survpath" / "datasets_csv"


def _as_sets(membership):
    return {p: set(g) for p, g in membership.groupby("pathway")["gene"]}


def test_pathway_matrix_and_list_form_agree(survpath):
    matrix = read_pathways(survpath / "pathway_compositions" / "combine_comps.csv")
    lists = read_pathways(survpath / "metadata" / "combine_signatures.csv")
    assert len(matrix) == 9745 and matrix["pathway"].nunique() == 331 and matrix["gene"].nunique() == 4999
    assert _as_sets(matrix) == _as_sets(lists)
    assert matrix["pathway"].iloc[0] == "GABA_B_receptor_activation"  # pathway order = file column order
    assert "Toll_Like_Receptor_TLR6/TLR2_Cascade" in set(matrix["pathway"])


def test_hallmark_files_and_gmt(real_data, survpath):
    comps = read_pathways(
        survpath / "pathway_compositions" / "hallmarks_comps.csv"
    )  # empty first header cell
    assert comps["pathway"].nunique() == 50 and comps["gene"].nunique() == 4241
    assert _as_sets(comps) == _as_sets(read_pathways(survpath / "metadata" / "hallmarks_signatures.csv"))
    gmt = read_pathways(real_data / "msigdb_hallmark" / "h.all.v7.0.symbols.gmt")  # CRLF, no final newline
    assert gmt["pathway"].nunique() == 50 and len(gmt) == 7322 and gmt["gene"].nunique() == 4384
    first = gmt[gmt["pathway"] == "HALLMARK_TNFA_SIGNALING_VIA_NFKB"]["gene"]
    assert len(first) == 200 and list(first[:3]) == ["JUNB", "CXCL2", "ATF3"]
    assert not gmt["gene"].str.contains(r"\s").any()
    assert gmt["gene"].iloc[-1] == "SRP14"  # the last line, without its newline
    survpath_sets, msigdb_sets = _as_sets(comps), _as_sets(gmt)
    ratios = [len(survpath_sets[p]) / len(msigdb_sets[p]) for p in msigdb_sets]
    assert min(ratios) >= 0.915  # data-formats.md: SurvPath sets keep 91.5-100 % of v7.0


def test_survpath_blca_rna_table(survpath):
    path = survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"
    assert detect_layout(path) == "toil_samples_by_genes"
    table = read_expression(path)
    assert table.shape == (360, 1577)
    assert table.loc["TCGA-MV-A51V", "FMO2"] == pytest.approx(-1.9379)
    assert table.loc["TCGA-MV-A51V", "PLCE1"] == pytest.approx(2.2452)
    assert table.to_numpy().min() == pytest.approx(-9.9658)  # log2(0.001) floor of the Toil recompute
    labels = pd.read_csv(survpath / "metadata" / "tcga_blca.csv")
    assert labels["case_id"].nunique() == 359 and set(labels["case_id"]) <= set(table.index)
    split = pd.read_csv(survpath.parent / "splits" / "5foldcv" / "tcga_blca" / "splits_0.csv")
    cases = set(split["train"].dropna()) | set(split["val"].dropna())
    assert len(cases) == 359 and cases <= set(table.index)


def test_gene_matching_reports_found_and_missing(survpath):
    membership = read_pathways(survpath / "pathway_compositions" / "combine_comps.csv")
    measured = set(expression_genes(survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"))
    match = restrict_to_genes(membership, {g.lower() for g in measured})  # case-insensitive
    assert match.genes_found == 1577 and len(match.genes_missing) == 3422
    assert match.membership["pathway"].nunique() == 331 and not match.pathways_dropped
    only_two = restrict_to_genes(membership, {"TP53", "egfr"})
    assert set(only_two.membership["gene"]) == {"TP53", "EGFR"}
    assert len(only_two.pathways_dropped) == 331 - only_two.membership["pathway"].nunique()


def _hiseq_fixture(survpath, tmp_path):
    """HiSeqV2 layout DERIVED from the BLCA Toil table: genes x samples, `-01` tumour ids, plus a `-11` normal
    sample listed first for one patient, a normal-only patient, `SYMBOL|ID` gene ids and a `?|ID` row."""
    rna = pd.read_csv(survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv", index_col=0)
    sub = rna.iloc[:4, :6]
    samples = sub.copy()
    samples.index = [f"{p}-01" for p in sub.index]
    normal = sub.iloc[[0]] + 100.0
    normal.index = [f"{sub.index[0]}-11"]
    normal_only = sub.iloc[[1]] - 100.0
    normal_only.index = ["TCGA-ZZ-0001-11"]
    samples = pd.concat([normal, samples, normal_only])
    matrix = samples.T
    matrix.index = [f"{g}|{i}" for i, g in enumerate(matrix.index)]
    matrix.loc["?|100130426"] = 1.0
    matrix.index.name = "sample"
    path = tmp_path / "HiSeqV2"
    matrix.to_csv(path, sep="\t", float_format="%.4f")
    return path, sub


def test_xena_layout_and_tumour_samples(survpath, tmp_path):
    path, reference = _hiseq_fixture(survpath, tmp_path)
    assert detect_layout(path) == "xena_genes_by_samples"
    samples = read_expression(path)
    assert list(samples.columns) == list(reference.columns)  # symbols kept, the `?` row dropped
    patients, normal_only = select_tumour_samples(samples)
    assert normal_only == ["TCGA-ZZ-0001"]
    assert list(patients.index) == list(reference.index)  # tumour -01 chosen over the -11 listed first
    np.testing.assert_allclose(patients.to_numpy(), reference.to_numpy(), atol=1e-4)


def test_unknown_expression_layout(tmp_path):
    path = tmp_path / "expr.tsv"
    path.write_text("gene\ts1\ts2\nTP53\t1\t2\n")
    with pytest.raises(ExpressionFormatError, match="xena_genes_by_samples"):
        read_expression(path)


def test_cli_pathways_and_site_table(survpath, tmp_path):
    hiseq, reference = _hiseq_fixture(survpath, tmp_path)
    pathways = tmp_path / "pathways.gmt"
    genes = list(reference.columns)
    pathways.write_text(
        f"SET_A\tdesc\t{genes[2].lower()}\t{genes[0]}\tNOT_MEASURED\r\nSET_B\tdesc\t{genes[0]}\t{genes[4]}\t\r\n"
        "SET_C\tdesc\tNOT_MEASURED\r\n"
    )
    out = tmp_path / "omics"
    main(["pathways", "--pathways", str(pathways), "--rna", str(hiseq), str(survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"),
          "--output", str(out / "pathways.parquet")])  # fmt: skip
    membership, summary = read_parquet(out / "pathways.parquet")
    assert membership.values.tolist() == [
        ["SET_A", genes[2].lower()], ["SET_A", genes[0]], ["SET_B", genes[0]], ["SET_B", genes[4]],
    ]  # fmt: skip
    assert summary["genes_missing"] == 1 and summary["pathways_dropped"] == ["SET_C"]

    main(["omics", "--site", "BLCA", "--rna", str(hiseq), "--membership", str(out / "pathways.parquet"),
          "--output", str(out / "BLCA.parquet")])  # fmt: skip
    table, metadata = read_parquet(out / "BLCA.parquet")
    assert list(table.columns) == ["patient", genes[2].lower(), genes[0], genes[4]]
    assert list(table["patient"]) == list(reference.index) and metadata["normal_only_patients"] == [
        "TCGA-ZZ-0001"
    ]
    np.testing.assert_allclose(table[genes[0]], reference[genes[0]], atol=1e-4)
    assert table[genes[0]].dtype == np.float32


def test_gene_scaler_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(5, 2, size=(50, 3)), columns=["A", "B", "C"])
    train["C"] = 7.0  # constant in training
    val = pd.DataFrame({"A": [5.0, np.nan], "B": [100.0, 0.0], "C": [7.0, 9.0]})
    scaler = GeneScaler().fit(train)
    z_train = scaler.transform(train)
    np.testing.assert_allclose(z_train[["A", "B"]].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(z_train[["A", "B"]].std(ddof=0), 1, atol=1e-5)
    z_val = scaler.transform(val[["C", "B", "A"]])  # column order follows the fit
    assert list(z_val.columns) == ["A", "B", "C"]
    expected_b = (100.0 - train["B"].mean()) / train["B"].std(ddof=0)
    assert z_val.loc[0, "B"] == pytest.approx(expected_b, rel=1e-5)  # val may leave the training range
    assert z_val.loc[1, "A"] == 0.0  # missing -> training mean
    assert z_val.loc[1, "C"] == pytest.approx(2.0)  # constant gene: std 1
    restored = GeneScaler.from_state_dict(scaler.state_dict())
    pd.testing.assert_frame_equal(restored.transform(val), z_val)
    with pytest.raises(ValueError, match="fitted genes absent"):
        scaler.transform(val[["A"]])


# ---- gene symbols: pathway file vs RNA (the Xena symbols of the official release, aliases, checks) -------------
@pytest.fixture(scope="module")
def release_pathways(real_data):
    return real_data / "modaltune_release" / "gene_pathway_processed_v2.csv"


def test_the_release_pathways_are_survpaths_in_older_symbols(survpath, release_pathways):
    release = read_pathways(release_pathways)
    survpath_pathways = read_pathways(survpath / "pathway_compositions" / "combine_comps.csv")
    assert release["pathway"].nunique() == 331 and len(release) == 9731 and release["gene"].nunique() == 4987
    assert list(release["pathway"].drop_duplicates()) == list(survpath_pathways["pathway"].drop_duplicates())
    renamed = set(release["gene"]) - set(survpath_pathways["gene"])
    assert {"IL8", "DARC"} <= renamed and len(renamed) == 70
    assert not {"CXCL8", "ACKR1"} & set(release["gene"])


@pytest.mark.parametrize("pathway_file, missing", [
    ("survpath/datasets_csv/pathway_compositions/combine_comps.csv", 3422),
    ("modaltune_release/gene_pathway_processed_v2.csv", 3423),
])
def test_more_than_one_percent_missing_warns_with_count_examples_and_hint(real_data, pathway_file, missing, caplog):
    """SurvPath's BLCA table holds 1,577 genes (its Reactome/PARADIGM set): two thirds of the 331 pathways' genes
    are not in it, whichever spelling the pathway file uses."""
    from modaltune.omics.build import build_pathways

    rna = real_data / "survpath" / "datasets_csv" / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"
    match = build_pathways(real_data / pathway_file, [rna])
    assert len(match.genes_missing) == missing
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"{missing} of the" in warning and str(rna) in warning and pathway_file in warning
    measured = set(expression_genes(rna))
    first_missing = [g for g in read_pathways(real_data / pathway_file)["gene"].unique() if g not in measured][:5]
    assert str(first_missing) in warning  # a few examples, in the pathway file's order
    assert "gene_pathway_processed_v2.csv" in warning and "IL8" in warning and "omics.gene_aliases" in warning


def test_a_pathway_file_inside_the_rna_genes_does_not_warn(survpath, caplog):
    from modaltune.omics.build import build_pathways

    rna = survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"
    match = build_pathways(survpath / "metadata" / "xena_signatures.csv", [rna])  # its genes are the table's
    assert match.genes_found == 1577 and not match.genes_missing
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_pathway_file_with_no_gene_in_the_rna_stops_naming_both_files(survpath, release_pathways, tmp_path):
    """The release's renamed genes only (IL8, DARC, ...): the BLCA table spells every one of them differently."""
    from modaltune.omics.build import build_pathways

    rna = survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"
    survpath_genes = set(read_pathways(survpath / "pathway_compositions" / "combine_comps.csv")["gene"])
    release = pd.read_csv(release_pathways)
    renamed_only = tmp_path / "renamed_only.csv"
    release[~release["gene"].isin(survpath_genes | set(expression_genes(rna)))].to_csv(renamed_only, index=False)
    with pytest.raises(ValueError, match=rf"no gene of the pathway file {renamed_only} is in the RNA file {rna}"):
        build_pathways(renamed_only, [rna])


def test_an_alias_table_matches_old_pathway_symbols_to_new_rna_symbols(survpath, release_pathways, tmp_path):
    """The release spells DCI and ORC2L, SurvPath's BLCA table ECI1 and ORC2 (their current symbols)."""
    from modaltune.omics.build import build_pathways, build_site_genes
    from modaltune.omics.symbols import read_gene_aliases

    rna = survpath / "raw_rna_data" / "xena" / "blca" / "rna_clean.csv"
    aliases_file = tmp_path / "aliases.csv"
    aliases_file.write_text("old,new\nDCI,ECI1\norc2l,ORC2\nIL8,CXCL8\n")
    aliases = read_gene_aliases(aliases_file)
    plain = build_pathways(release_pathways, [rna])
    aliased = build_pathways(release_pathways, [rna], aliases)
    assert {"DCI", "ORC2L"} <= set(plain.genes_missing)
    assert set(plain.genes_missing) - set(aliased.genes_missing) == {"DCI", "ORC2L"}  # CXCL8 is not in the table
    table, _ = build_site_genes([rna], aliased.membership, aliases)
    expression = read_expression(rna)
    assert np.array_equal(table.set_index("patient").loc[expression.index, "DCI"].to_numpy(),
                          expression["ECI1"].to_numpy())
    with pytest.raises(ValueError, match="genes of results/omics/pathways.parquet are missing"):
        build_site_genes([rna], aliased.membership)  # the table must use the aliases the membership used


def test_a_conflicting_alias_table_is_refused(tmp_path):
    from modaltune.omics.symbols import read_gene_aliases

    aliases = tmp_path / "aliases.csv"
    aliases.write_text("old,new\nIL8,CXCL8\nil8,CXCL9\n")
    with pytest.raises(ValueError, match=r"aliases.csv: old symbol\(s\) \['IL8'\] map to several new symbols"):
        read_gene_aliases(aliases)
    aliases.write_text("from,to\nIL8,CXCL8\n")
    with pytest.raises(ValueError, match="needs columns old,new"):
        read_gene_aliases(aliases)
