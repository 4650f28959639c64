"""Offline preview: run the program under Pulumi's mock engine and judge it with the policy pack."""
