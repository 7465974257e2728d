"""Load data sets with LLaMA-Factory's own code, as its `llamafactory-cli train` would.

Run with a Python that has llamafactory installed (it pins its own torch/transformers,
so it lives in a separate venv):

    /tmp/lf-venv/bin/python tests/emit/llamafactory_load.py DATASET_DIR MODEL_DIR [NAME ...]

For every entry of DATASET_DIR/dataset_info.json (or the NAMEs given) it runs
``get_dataset`` (stage sft, template chatml) and prints one JSON line: the entry, rows
loaded, rows with no trained tokens, a digest of every row's input ids and labels (equal
digests: identical training data), the first record decoded, or the error. tests/emit/test_llamafactory_real.py runs it when SFTDATA_LLAMAFACTORY_PYTHON
names such a Python.
"""

import hashlib
import json
import sys
import tempfile
import traceback


def load(dataset_dir: str, model_dir: str, name: str) -> dict:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, _, _ = get_train_args({
            "stage": "sft", "do_train": True, "model_name_or_path": model_dir, "dataset": name,
            "dataset_dir": dataset_dir, "template": "chatml", "cutoff_len": 4096,
            "output_dir": out, "overwrite_cache": True, "finetuning_type": "lora",
            "report_to": "none", "preprocessing_num_workers": 1,
        })
        tokenizer_module = load_tokenizer(model_args)
        tokenizer = tokenizer_module["tokenizer"]
        template = get_template_and_fix_tokenizer(tokenizer, data_args)
        module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
        dataset = module["train_dataset"]
        empty = sum(1 for row in dataset if all(label == -100 for label in row["labels"]))
        digest = hashlib.sha256()
        for row in dataset:
            digest.update(json.dumps([row["input_ids"], row["labels"]]).encode())
        first = dataset[0]
        return {"name": name, "ok": True, "rows": len(dataset), "rows_without_labels": empty,
                "tokens_sha256": digest.hexdigest()[:16],
                "first_input": tokenizer.decode(first["input_ids"])[:300],
                "first_labels": tokenizer.decode([t for t in first["labels"] if t != -100])[:200],
                "first_input_ids": first["input_ids"], "first_labels_ids": first["labels"]}


def main() -> None:
    dataset_dir, model_dir, *names = sys.argv[1:]
    with open(f"{dataset_dir}/dataset_info.json", encoding="utf-8") as f:
        names = names or list(json.load(f))
    for name in names:
        try:
            result = load(dataset_dir, model_dir, name)
        except BaseException as exc:  # noqa: BLE001 - report every failure, keep going
            last = traceback.format_exception(exc)[-1].strip()
            result = {"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:400], "last": last[:400]}
        print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
