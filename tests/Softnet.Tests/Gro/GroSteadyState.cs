using Softnet.Gro;
using Softnet.Packets;

namespace Softnet.Tests.Gro;

/// <summary>A GRO engine fed as a NAPI poll feeds it, round after round (each frame copied into a pooled buffer and
/// built into an skb, then the poll's end), for the allocation checks: what it passes up is freed at once.</summary>
internal sealed class GroSteadyState
{
    public PagePool Pool { get; } = new(512);
    public SkbPool Skbs { get; } = new(512);
    public GroEngine Engine { get; } = new(new GroOptions(), new FreeingSink());

    /// <summary>One poll over <paramref name="frames"/>.</summary>
    public void Run(byte[][] frames)
    {
        foreach (var f in frames)
        {
            Pool.TryRent(out int i);
            f.CopyTo(Pool.Slice(i, Pool.Headroom, f.Length));
            var skb = Skbs.Build(Pool, i, Pool.Headroom, f.Length)!;
            skb.ResetMacHeader();
            Engine.Receive(skb, 0);
        }
        Engine.PollComplete(frames.Length, int.MaxValue, 0);
    }

    /// <summary>Bytes this thread allocated over <paramref name="rounds"/> polls of <paramref name="frames"/>.</summary>
    public long AllocatedOver(byte[][] frames, int rounds)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int w = 0; w < rounds; w++) Run(frames);
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private sealed class FreeingSink : IGroSink
    {
        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (var s in batch) s.Free();
        }
    }
}
