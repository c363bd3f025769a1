"""Saying a thing once about many binaries (common/grouping.py)."""

from tvmffi_wheel.common.grouping import alike_count, groups, said_once, subject_of


def test_groups_keep_the_order_each_key_first_appears():
    assert groups([3, 1, 4, 1, 5, 9, 2, 6], key=lambda n: n % 3) == [[3, 9, 6], [1, 4, 1], [5, 2]]


def test_the_subject_is_the_longest_path_the_message_names():
    paths = ["lib/libk1.so", "lib/libk12.so"]
    assert subject_of("lib/libk12.so has sm_52 code", paths) == "lib/libk12.so"
    assert subject_of("lib/libk1.so has sm_52 code", paths) == "lib/libk1.so"
    assert subject_of("the wheel is large", paths) == ""


def test_messages_alike_but_for_their_binary_are_said_once_with_a_count_and_an_example():
    paths = [f"pkg/k{i}/libk{i}.so" for i in range(300)]
    messages = [f"{p} has device code for sm_52, which nothing declares" for p in paths]
    messages.insert(5, "the wheel is 653.5 MB")
    messages.append("pkg/k7/libk7.so exports 16 symbols of the C++ runtime")
    assert said_once(messages, paths) == [
        "pkg/k0/libk0.so has device code for sm_52, which nothing declares (and 299 more alike, "
        "e.g. pkg/k1/libk1.so)",
        "the wheel is 653.5 MB",
        "pkg/k7/libk7.so exports 16 symbols of the C++ runtime",
    ]


def test_messages_that_differ_in_more_than_the_binary_stay_apart():
    paths = ["a.so", "b.so"]
    assert said_once(["a.so exports 3 symbols", "b.so exports 4 symbols"], paths) == [
        "a.so exports 3 symbols", "b.so exports 4 symbols"]


def test_a_message_about_no_binary_repeated_says_how_often():
    assert said_once(["x", "x", "y"], ["a.so"]) == ["x (2 times)", "y"]


def test_alike_count_names_one_alone():
    assert alike_count(1, "a.so") == "a.so"
    assert alike_count(3, "a.so", "binaries") == "3 binaries like a.so"
