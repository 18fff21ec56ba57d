"""Shipped demo data: synthetic sentences written for bertsecrets by ``make_demo.py``; NOT GLUE."""
