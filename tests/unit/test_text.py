from management.text import age, escape_label, human_size


def test_human_size():
    assert (human_size(None), human_size(999), human_size(1_500_000_000)) == ("-", "999 B", "1.5 GB")


def test_age_reads_hours_up_to_three_days():
    assert [age(None), age(-5), age(59 * 60), age(36 * 3600), age(80 * 3600)] == ["?", "0m", "59m", "36h", "3d"]


def test_escape_label_escapes_backslash_quote_and_newline():
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


def test_the_pool_of_a_dataset_is_its_first_component():
    from management.text import pool_of

    assert pool_of("datapool/services/git") == "datapool" and pool_of("tank") == "tank"
