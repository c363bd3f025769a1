"""What every stage may use: words and rules that belong to no one stage."""
