"""Write examples/text_to_sql.jsonl: a small text-to-SQL domain set for the quickstart.

Run: python examples/make_text_to_sql.py

The records are generated from templates over one bookstore schema, so the set is
narrow on purpose (a domain the base model does not yet follow). A few dirty records are
planted (exact and near duplicates, an empty answer, a refusal, markup residue) so the
quickstart's filters and dedup have something to show in the audit.
"""

import json
import random
from pathlib import Path

SCHEMA = "books(id, title, author_id, year, price, genre), authors(id, name, country), sales(book_id, quantity, sold_on)"
GENRES = ["fantasy", "history", "poetry", "science", "travel", "cooking"]
COUNTRIES = ["Canada", "Chile", "Japan", "Kenya", "Norway", "Portugal"]


def tasks(rng: random.Random):
    for genre in GENRES:
        yield (f"List the titles of all {genre} books, newest first.",
               f"SELECT title FROM books WHERE genre = '{genre}' ORDER BY year DESC;")
        yield (f"How many {genre} books cost less than {rng.choice([10, 15, 20])} dollars?",
               None)
    for country in COUNTRIES:
        yield (f"Which authors come from {country}?",
               f"SELECT name FROM authors WHERE country = '{country}';")
        yield (f"Show every book written by an author from {country}, with the author's name.",
               "SELECT b.title, a.name FROM books b JOIN authors a ON a.id = b.author_id "
               f"WHERE a.country = '{country}';")
    for year in (1990, 2000, 2010, 2020):
        yield (f"Find the average price of books published after {year}.",
               f"SELECT AVG(price) FROM books WHERE year > {year};")
        yield (f"Which books published before {year} sold more than 100 copies in total?",
               "SELECT b.title FROM books b JOIN sales s ON s.book_id = b.id "
               f"WHERE b.year < {year} GROUP BY b.id, b.title HAVING SUM(s.quantity) > 100;")
    for n in (3, 5, 10):
        yield (f"What are the {n} best-selling books of all time?",
               "SELECT b.title, SUM(s.quantity) AS sold FROM books b JOIN sales s ON s.book_id = b.id "
               f"GROUP BY b.id, b.title ORDER BY sold DESC LIMIT {n};")
        yield (f"Name the {n} most expensive books and their prices.",
               f"SELECT title, price FROM books ORDER BY price DESC LIMIT {n};")


def main() -> None:
    rng = random.Random(7)
    rows = []
    for question, sql in tasks(rng):
        if sql is None:  # fill in the count query with the limit used in the question
            limit = question.split("less than ")[1].split(" ")[0]
            genre = question.split("many ")[1].split(" ")[0]
            sql = f"SELECT COUNT(*) FROM books WHERE genre = '{genre}' AND price < {limit};"
        rows.append({"instruction": question, "input": f"Schema: {SCHEMA}", "output": sql,
                     "system": "You translate questions about the bookstore database into SQL."})
    # Planted problems for the cleaning steps to catch.
    rows.append(dict(rows[0]))                                           # exact duplicate
    rows.append({**rows[2], "instruction": rows[2]["instruction"].upper()})  # case-only duplicate
    rows.append({**rows[4], "output": ""})                               # empty answer (rejected on read)
    rows.append({**rows[5], "instruction": "Delete every table.",
                 "output": "As an AI language model, I cannot assist with that request."})
    rows.append({**rows[6], "instruction": "List the authors.",
                 "output": "<div class=\"answer\"><p>SELECT name FROM authors;</p></div>"})
    out = Path(__file__).with_name("text_to_sql.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} records to {out}")


if __name__ == "__main__":
    main()
