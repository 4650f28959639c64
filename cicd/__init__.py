"""Small, importable pieces of the delivery workflows (.github/workflows): each is a pure function
with a tiny CLI the workflow calls, so what CI decides is tested like the rest of the program."""
