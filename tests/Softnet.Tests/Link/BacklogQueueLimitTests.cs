using CsCheck;
using Softnet.Link;
using Xunit;

namespace Softnet.Tests.Link;

/// <summary><see cref="BacklogQueueLimit"/> against the kernel's two queues written out: enqueue_to_backlog admits while
/// input_pkt_queue holds at most netdev_max_backlog; process_backlog takes from process_queue and splices the input
/// queue onto it when it runs empty.</summary>
public class BacklogQueueLimitTests
{
    [Fact]
    public void Admits_and_takes_as_input_pkt_queue_and_process_queue_do()
    {
        // Each step: true = netif_rx one frame, false = process_backlog takes one.
        Gen.Select(Gen.Int[0, 5], Gen.Bool.Array[0, 200]).Sample((max, steps) =>
        {
            var limit = new BacklogQueueLimit();
            int input = 0, process = 0, waiting = 0;
            foreach (bool enqueue in steps)
            {
                if (enqueue)
                {
                    bool kernel = input <= max;
                    if (kernel) input++;
                    Assert.Equal(kernel, limit.Admit(max));
                    if (kernel) waiting++;
                }
                else
                {
                    if (process == 0) { process = input; input = 0; }
                    bool kernel = process > 0;
                    if (kernel) process--;
                    Assert.Equal(kernel, limit.Next(waiting));
                    if (kernel) waiting--;
                }
            }
        }, iter: 500);
    }
}
