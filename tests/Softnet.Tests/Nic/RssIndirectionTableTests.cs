using CsCheck;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Nic;

public class RssIndirectionTableTests
{
    [Fact]
    public void Equal_fills_entry_i_with_i_mod_n_like_ethtool_equal()
    {
        var t = RssIndirectionTable.Equal(3);
        Assert.Equal(128, t.Size);
        for (int i = 0; i < t.Size; i++) Assert.Equal(i % 3, t[i]);
        Assert.Equal(3, t.QueueCount);
    }

    [Fact]
    public void Queue_uses_low_bits_of_the_hash()
    {
        var t = RssIndirectionTable.Equal(8);
        // 0x51ccc178 & 127 = 120 -> 120 % 8 = 0; 0x323e8fc2 & 127 = 66 -> 2.
        Assert.Equal(120, t.IndexFor(0x51ccc178));
        Assert.Equal(0, t.QueueFor(0x51ccc178));
        Assert.Equal(2, t.QueueFor(0x323e8fc2));
        var odd = RssIndirectionTable.Equal(4, size: 100);
        Assert.Equal((int)(0x51ccc178u % 100), odd.IndexFor(0x51ccc178));
        Assert.Equal(0, new RssIndirectionTable(1).QueueFor(0xffffffff));
    }

    [Fact]
    public void Weights_1_1_split_the_table_in_two_runs()
    {
        var t = RssIndirectionTable.Weighted([1, 1]);
        for (int i = 0; i < 64; i++) Assert.Equal(0, t[i]);
        for (int i = 64; i < 128; i++) Assert.Equal(1, t[i]);
    }

    [Fact]
    public void Zero_weight_queue_gets_no_slots()
    {
        var t = RssIndirectionTable.Weighted([0, 1, 3], size: 8);
        Assert.Equal([1, 1, 2, 2, 2, 2, 2, 2], t.Entries.ToArray());
    }

    [Fact]
    public void Weights_1_2_3_cut_at_size_times_cumulative_share()
    {
        // Boundaries at 128*1/6 = 21 and 128*3/6 = 64 (integer division, as in ethtool's fill_indir_table).
        var t = RssIndirectionTable.Weighted([1, 2, 3]);
        int[] counts = new int[3];
        foreach (int q in t.Entries) counts[q]++;
        Assert.Equal([21, 43, 64], counts);
        Assert.Equal(0, t[20]);
        Assert.Equal(1, t[21]);
        Assert.Equal(2, t[64]);
    }

    [Fact]
    public void Weight_errors_match_ethtool_checks()
    {
        var t = new RssIndirectionTable();
        Assert.Contains("non-zero", Assert.Throws<ArgumentException>(() => t.FillWeights([0, 0])).Message);
        Assert.Contains("exceeds", Assert.Throws<ArgumentException>(() => t.FillWeights([100, 29])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.FillEqual(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RssIndirectionTable(0));
    }

    [Fact]
    public void Weighted_runs_are_monotonic_and_shares_within_one_slot()
    {
        Gen.Select(Gen.UInt[0, 20].Array[1, 12], Gen.Int[1, 512]).Where((w, size) => w.Sum(x => (long)x) is > 0 and var s && s <= size)
            .Sample((w, size) =>
            {
                var t = RssIndirectionTable.Weighted(w, size);
                long sum = w.Sum(x => (long)x);
                int[] counts = new int[w.Length];
                for (int i = 0; i < size; i++)
                {
                    counts[t[i]]++;
                    if (i > 0) Assert.True(t[i] >= t[i - 1]);
                }
                for (int q = 0; q < w.Length; q++)
                {
                    double ideal = (double)size * w[q] / sum;
                    Assert.True(Math.Abs(counts[q] - ideal) < 1.0 + 1e-9, $"queue {q}: {counts[q]} slots, ideal {ideal}");
                    if (w[q] == 0) Assert.Equal(0, counts[q]);
                }
            }, iter: 500);
    }
}
