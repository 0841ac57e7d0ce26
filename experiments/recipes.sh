# Training recipes compared in docs/RESULTS.md, by name: sourced by
# experiments/screen_recipes.sh and experiments/reproduce_mn10_small.sh.
# Every recipe starts from the paper's recipe (PAPER: every recipe flag at its
# default, written out so that a recipe set in a flag file is overridden) and
# changes only what its name says.
# shellcheck disable=SC2034
PAPER="--discriminator_learning_rate=0 --generator_learning_rate=0 --discriminator_gate=1"
PAPER="$PAPER --instance_noise=0 --instance_noise_steps=0 --real_label=1 --r1_gamma=0"
PAPER="$PAPER --nodiscriminator_augment"
PAPER="$PAPER --nodm_spectral_norm --nodm_minibatch_std --rotation_weight=0 --gan_loss=standard"
PAPER="$PAPER --critic_steps=1 --dm_batch_norm --voxel_tv_weight=0"

declare -A RECIPE=(
    [paper]=""
    [d_lr_1e-5]="--discriminator_learning_rate=1e-5"
    [gate_0.8]="--discriminator_gate=0.8"
    [3dgan]="--discriminator_learning_rate=1e-5 --generator_learning_rate=2.5e-3 --discriminator_gate=0.8"
    [noise_0.2]="--instance_noise=0.2"
    [r1_10]="--r1_gamma=10"
    [smooth_0.9]="--real_label=0.9"
    [augment]="--discriminator_augment"
    [augment+d_lr_1e-5]="--discriminator_augment --discriminator_learning_rate=1e-5"
    [augment+noise]="--discriminator_augment --instance_noise=0.2"
    [d_lr_1e-5+noise]="--discriminator_learning_rate=1e-5 --instance_noise=0.2"
    [d_lr_1e-5+r1]="--discriminator_learning_rate=1e-5 --r1_gamma=10"
    [sn]="--dm_spectral_norm"
    [mbstd]="--dm_minibatch_std"
    [rotation]="--rotation_weight=1"
    [r1_10+rotation]="--r1_gamma=10 --rotation_weight=1"
    [r1_10+sn]="--r1_gamma=10 --dm_spectral_norm"
    [r1_10+mbstd]="--r1_gamma=10 --dm_minibatch_std"
    [r1_10+tv30]="--r1_gamma=10 --voxel_tv_weight=30"
    [r1_10+rotation+tv30]="--r1_gamma=10 --rotation_weight=1 --voxel_tv_weight=30"
    [wgan_gp]="--gan_loss=wgan_gp --critic_steps=5 --nodm_batch_norm"
    [all]="--discriminator_learning_rate=1e-5 --instance_noise=0.2 --discriminator_gate=0.8 --real_label=0.9"
)

recipe_flags() {  # recipe_flags <name>: the flags of a recipe, or exit 2
    if [ -z "${RECIPE[$1]+x}" ]; then
        echo "unknown recipe $1; known: ${!RECIPE[*]}" >&2
        exit 2
    fi
    echo "$PAPER ${RECIPE[$1]}"
}
