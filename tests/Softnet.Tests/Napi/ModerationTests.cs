using Softnet.Napi;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Napi;

/// <summary>rx-usecs / rx-frames interrupt moderation on the virtual clock.</summary>
public class ModerationTests
{
    private const long Us = 1_000;

    private static (NapiEngine, FakePoller, IrqVector) Setup(InterruptModeration m)
    {
        var engine = new NapiEngine();
        var p = new FakePoller();
        var irq = engine.AddQueue(p, moderation: m);
        return (engine, p, irq);
    }

    private static void Arrive(NapiEngine engine, FakePoller p, IrqVector irq, long ts)
    {
        engine.Step(ts);
        p.Pending++;
        irq.NotifyFrames(1, ts);
    }

    [Fact]
    public void Immediate_EveryFrameWhileArmedInterrupts()
    {
        var (engine, p, irq) = Setup(InterruptModeration.Immediate);
        for (int i = 0; i < 10; i++) Arrive(engine, p, irq, i * Us);
        engine.RunUntilIdle();
        Assert.Equal(10, irq.InterruptsFired);
        Assert.Equal(0, irq.Coalesced);
        Assert.Equal(10, p.Consumed);
    }

    [Fact]
    public void ByFrames_FiresOnTheNthFrame_FlushesTheRestAtEnd()
    {
        var (engine, p, irq) = Setup(new InterruptModeration(RxUsecs: 0, RxFrames: 8));
        for (int i = 0; i < 20; i++)
        {
            Arrive(engine, p, irq, i * Us);
            if (i == 6) Assert.Equal(0, irq.InterruptsFired);
            if (i == 7) Assert.Equal(1, irq.InterruptsFired);
        }
        engine.Step(20 * Us);
        Assert.Equal(2, irq.InterruptsFired);  // frames 8 and 16
        Assert.Equal(16, p.Consumed);
        Assert.Equal(18, irq.Coalesced);       // 7 + 7 + 4 held back
        engine.RunUntilIdle();                 // 4 frames below the threshold: forced flush
        Assert.Equal(3, irq.InterruptsFired);
        Assert.Equal(20, p.Consumed);
    }

    [Fact]
    public void ByUsecs_FiresAtTheDeadlineOfTheFirstWaitingFrame()
    {
        var (engine, p, irq) = Setup(new InterruptModeration(RxUsecs: 50, RxFrames: 0));
        Arrive(engine, p, irq, 0);
        Arrive(engine, p, irq, 10 * Us);
        Arrive(engine, p, irq, 20 * Us);
        Assert.Equal(50 * Us, irq.NextDeadlineNs);
        engine.Step(50 * Us - 1);
        Assert.Equal(0, irq.InterruptsFired);
        Assert.Equal(0, p.Consumed);
        engine.Step(50 * Us);
        Assert.Equal(1, irq.InterruptsFired);
        Assert.Equal(3, p.Consumed);
        Assert.Equal(3, irq.Coalesced);
        Assert.Equal(long.MaxValue, irq.NextDeadlineNs);
        Assert.False(irq.IsMasked);
    }

    [Fact]
    public void FramesBeatTheTimer_ThenTimerServesALateStraggler()
    {
        var (engine, p, irq) = Setup(new InterruptModeration(RxUsecs: 50, RxFrames: 4));
        for (int i = 0; i < 4; i++) Arrive(engine, p, irq, i * Us);
        Assert.Equal(1, irq.InterruptsFired); // the 4th frame at 3 us, long before 50 us
        engine.Step(10 * Us);
        Assert.Equal(4, p.Consumed);

        Arrive(engine, p, irq, 100 * Us);
        engine.Step(150 * Us - 1);
        Assert.Equal(1, irq.InterruptsFired);
        engine.Step(150 * Us);
        Assert.Equal(2, irq.InterruptsFired);
        Assert.Equal(5, p.Consumed);
    }

    [Fact]
    public void RunUntilIdle_AdvancesToPendingTimers()
    {
        var (engine, p, irq) = Setup(new InterruptModeration(RxUsecs: 200, RxFrames: 0));
        Arrive(engine, p, irq, 1_000 * Us);
        engine.RunUntilIdle();
        Assert.Equal(1, p.Consumed);
        Assert.Equal(1_200 * Us, engine.NowNs);
    }

    [Theory]
    [InlineData("rx-usecs=50,rx-frames=16", 50, 16)]
    [InlineData("rx-frames=1", 0, 1)]
    [InlineData("", 0, 0)]
    public void Moderation_Parses(string text, int usecs, int frames)
    {
        var m = InterruptModeration.Parse(text);
        Assert.Equal(new InterruptModeration(usecs, frames), m);
    }

    [Theory]
    [InlineData(0, 0, true)]
    [InlineData(0, 1, true)]
    [InlineData(50, 1, true)]
    [InlineData(0, 8, false)]
    [InlineData(50, 0, false)]
    public void Moderation_Immediate(int usecs, int frames, bool immediate)
        => Assert.Equal(immediate, new InterruptModeration(usecs, frames).IsImmediate);

    [Fact]
    public void Moderation_RejectsJunk() => Assert.Throws<FormatException>(() => InterruptModeration.Parse("rx-usecs=-1"));
}
